#pragma once
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

inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

// The first field named `name` (case-insensitive), or nullptr.
inline const HeaderField* findHeader(HeaderList headers, std::string_view name) {
  for (const auto& h : headers) {
    if (equalsIgnoreCase(h.name, name)) return &h;
  }
  return nullptr;
}

}  // namespace portico::http
