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
// HTTP/2's field names: tchar without uppercase letters (RFC 9113 §8.2.1).
struct LowerTcharTable : TcharTable {
  constexpr LowerTcharTable() {
    for (int c = 'A'; c <= 'Z'; ++c) allowed[c] = false;
  }
};
inline constexpr LowerTcharTable kLowerTchar;

inline bool isTchar(char c) { return kTchar.allowed[static_cast<unsigned char>(c)]; }
// field-vchar / SP / HTAB / obs-text: everything but controls other than HTAB, and DEL.
inline bool isFieldValueChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}
// Where the first byte of data[0, size) that is not a field value character is (size when
// none is). Eight bytes at a time: a word without a byte under 0x20 or a DEL is clean (Bit
// Twiddling Hacks' hasless and haszero); only a word with one (a tab, the line's CR, or an
// error) is looked at byte by byte.
inline size_t scanFieldValue(const char* data, size_t size) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, data + i, 8);
    const uint64_t del = word ^ (kOnes * 0x7f);
    if (((((word - kOnes * 0x20) & ~word) | ((del - kOnes) & ~del)) & kHighs) == 0) continue;
    for (size_t j = i; j < i + 8; ++j) {
      if (!isFieldValueChar(data[j])) return j;
    }
  }
  for (; i < size; ++i) {
    if (!isFieldValueChar(data[i])) return i;
  }
  return size;
}
inline bool isFieldValue(std::string_view value) {
  return scanFieldValue(value.data(), value.size()) == value.size();
}
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
inline bool isBlank(char c) { return c == ' ' || c == '\t'; }

// An HTTP/2 field as RFC 9113 §8.2.1 allows it: a lowercase token name (or a pseudo-header), a
// value of field value characters (no CR, LF, NUL or other controls) without leading or trailing
// whitespace. nghttp2 checks this too while its HTTP messaging is on; values are checked again
// here because the fields go on to HTTP/1.1 upstreams as text, where a CRLF in a value would
// make a header line of its own (review L10).
inline bool isValidHttp2Value(std::string_view value) {
  if (!isFieldValue(value)) return false;
  return value.empty() || (!isBlank(value.front()) && !isBlank(value.back()));
}
inline bool isValidHttp2Field(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (size_t i = name.front() == ':' ? 1 : 0; i < name.size(); ++i) {
    if (!kLowerTchar.allowed[static_cast<unsigned char>(name[i])]) return false;
  }
  return isValidHttp2Value(value);
}

}  // namespace portico::http
