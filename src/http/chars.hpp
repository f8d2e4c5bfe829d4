#pragma once
// Character classes of HTTP's grammar (RFC 9110 §5.6), shared by the parsers.

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

}  // namespace portico::http
