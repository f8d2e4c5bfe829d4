#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace portico::http {

// A header field as it appeared on the wire: views into the connection's read buffer, valid until
// the request is finished. Names keep their case; compare with equalsIgnoreCase.
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

using HeaderList = std::span<const HeaderField>;

inline char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Eight bytes lowered at once: a byte gets 0x20 when it is 'A' to 'Z' (the sums cannot carry
// from one byte into the next, as each is taken below 0x80 first).
inline uint64_t asciiLowerWord(uint64_t word) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = kOnes * 0x80;
  const uint64_t low7 = word & (kOnes * 0x7f);
  const uint64_t at_least_a = low7 + kOnes * (0x80 - 'A');
  const uint64_t above_z = low7 + kOnes * (0x80 - 'Z' - 1);
  const uint64_t upper = at_least_a & ~above_z & ~word & kHighs;
  return word | (upper >> 2);
}

// Copies src[0, size) to dest lowered (dest may be src).
inline void asciiLowerCopy(char* dest, const char* src, size_t size) {
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, src + i, 8);
    word = asciiLowerWord(word);
    __builtin_memcpy(dest + i, &word, 8);
  }
  for (; i < size; ++i) dest[i] = asciiLower(src[i]);
}

inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x, y;
    __builtin_memcpy(&x, a.data() + i, 8);
    __builtin_memcpy(&y, b.data() + i, 8);
    if (asciiLowerWord(x) != asciiLowerWord(y)) return false;
  }
  for (; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

// The first field named `name` (case-insensitive), or nullptr.
// Whether a field name holds '_' (which CGI-style servers read as '-'). Eight bytes at a time:
// it runs for every field forwarded, and names are short.
inline bool hasUnderscore(std::string_view name) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  constexpr uint64_t kUnderscores = 0x5f5f5f5f5f5f5f5fULL;
  size_t i = 0;
  for (; i + 8 <= name.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, name.data() + i, 8);
    word ^= kUnderscores;  // a zero byte where '_' was
    if (((word - kOnes) & ~word & kHighs) != 0) return true;
  }
  for (; i < name.size(); ++i) {
    if (name[i] == '_') return true;
  }
  return false;
}

// `v` without optional whitespace (SP, HTAB) at either end (RFC 9110 §5.6.3).
inline std::string_view trimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// Calls fn(name, value) for each "name: value\r\n" line of `lines` (fields the gateway wrote, or
// a trailer section the chunked decoder checked).
template <class Fn>
void forEachFieldLine(std::string_view lines, Fn&& fn) {
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t end = lines.find("\r\n", pos);
    if (end == std::string_view::npos) break;
    std::string_view line = lines.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) fn(line.substr(0, colon), trimOws(line.substr(colon + 1)));
    pos = end + 2;
  }
}

inline bool hasUnderscoreName(HeaderList headers) {
  for (const auto& h : headers) {
    if (hasUnderscore(h.name)) return true;
  }
  return false;
}

inline const HeaderField* findHeader(HeaderList headers, std::string_view name) {
  for (const auto& h : headers) {
    if (equalsIgnoreCase(h.name, name)) return &h;
  }
  return nullptr;
}

// The value of `name` in "a=1&b=2" (a query, separator '&') or "a=1; b=2" (a Cookie field,
// separator ';'), pairs trimmed of whitespace; the first one wins. Empty when absent.
inline std::string_view findPair(std::string_view list, char separator, std::string_view name) {
  while (!list.empty()) {
    const size_t end = list.find(separator);
    const std::string_view pair = trimOws(list.substr(0, end));
    if (pair.size() > name.size() && pair[name.size()] == '=' && pair.starts_with(name)) {
      return pair.substr(name.size() + 1);
    }
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
  }
  return {};
}

// The value of cookie `name` in the request's Cookie fields, or empty.
inline std::string_view findCookie(HeaderList headers, std::string_view name) {
  for (const auto& h : headers) {
    if (h.name.size() != 6 || !equalsIgnoreCase(h.name, "cookie")) continue;
    if (std::string_view value = findPair(h.value, ';', name); !value.empty()) return value;
  }
  return {};
}

// A CORS preflight (Fetch standard §4.8: OPTIONS with Origin and Access-Control-Request-Method)
// asks whether the request it announces may be made: its method, or empty for any other request.
inline std::string_view preflightMethod(std::string_view method, HeaderList headers) {
  if (method != "OPTIONS" || findHeader(headers, "origin") == nullptr) return {};
  const HeaderField* requested = findHeader(headers, "access-control-request-method");
  return requested != nullptr ? requested->value : std::string_view();
}

}  // namespace portico::http
