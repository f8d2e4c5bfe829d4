#pragma once
// Character classes of HTTP's grammar (RFC 9110 §5.6), shared by the parsers.

#include <cstdint>
#include <string_view>

namespace portico::http {

// RFC 9110 §5.6.2 tchar, as a table built at compile time.
struct TcharTable {
  bool allowed[256] = {};
  constexpr TcharTable() {
    for (int c = '0'; c <= '9'; ++c) allowed[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) allowed[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) allowed[c] = true;
    for (char c : "!#$%&'*+-.^_`|~") {
      if (c != 0) allowed[static_cast<unsigned char>(c)] = true;
    }
  }
};
inline constexpr TcharTable kTchar;

inline bool isTchar(char c) { return kTchar.allowed[static_cast<unsigned char>(c)]; }
// field-vchar / SP / HTAB / obs-text: everything but controls other than HTAB, and DEL.
inline bool isFieldValueChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
inline bool isBlank(char c) { return c == ' ' || c == '\t'; }

// An HTTP/2 field as RFC 9113 §8.2.1 allows it: a lowercase token name (or a pseudo-header), a
// value without CR, LF or NUL and without leading or trailing whitespace. nghttp2 checks this
// too while its HTTP messaging is on; checked again here because our HTTP/1.1 rendering of a
// stream would turn a CRLF in a value into a header line of its own (review L10).
inline bool isValidHttp2Field(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (size_t i = name.front() == ':' ? 1 : 0; i < name.size(); ++i) {
    if (!isTchar(name[i]) || (name[i] >= 'A' && name[i] <= 'Z')) return false;
  }
  for (char c : value) {
    if (!isFieldValueChar(c)) return false;
  }
  return value.empty() || (!isBlank(value.front()) && !isBlank(value.back()));
}

}  // namespace portico::http
