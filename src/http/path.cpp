#include "http/path.hpp"

#include <array>
#include <cstdint>

namespace portico::http {
namespace {

enum CharClass : uint8_t {
  kInvalid = 0,
  kPchar = 1,       // allowed raw in a segment (RFC 3986 §3.3 pchar minus pct-encoded)
  kUnreserved = 2,  // also decoded when percent-encoded (RFC 3986 §2.3)
};

constexpr std::array<uint8_t, 256> makeClassTable() {
  std::array<uint8_t, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[c] = kPchar | kUnreserved;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = kPchar | kUnreserved;
  for (int c = '0'; c <= '9'; ++c) table[c] = kPchar | kUnreserved;
  for (char c : {'-', '.', '_', '~'}) table[static_cast<uint8_t>(c)] = kPchar | kUnreserved;
  // sub-delims, ':' and '@' are pchar but keep their escaped form when encoded: an upstream may
  // give "%3B" and ";" different meanings (matrix parameters), so decoding would change the path.
  // ';' starts a segment's parameters: handled apart (see PathOptions), off the fast path.
  for (char c : {'!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', ':', '@'}) {
    table[static_cast<uint8_t>(c)] = kPchar;
  }
  return table;
}

constexpr std::array<uint8_t, 256> kClass = makeClassTable();

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kHexUpper[] = "0123456789ABCDEF";

// Letters outside escapes ("%3B" keeps its upper-case hex digits).
void lowercaseLetters(std::string& path) {
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%') {
      i += 2;
    } else if (path[i] >= 'A' && path[i] <= 'Z') {
      path[i] = static_cast<char>(path[i] + 32);
    }
  }
}

// Appends one raw segment (no '/') to `out`, decoded as path.hpp describes.
PathError appendSegment(std::string_view segment, std::string& out, const PathOptions& options) {
  for (size_t i = 0; i < segment.size(); ++i) {
    const auto c = static_cast<uint8_t>(segment[i]);
    if (c == '%') {
      if (i + 2 >= segment.size()) return PathError::BadPercent;
      const int hi = hexValue(segment[i + 1]);
      const int lo = hexValue(segment[i + 2]);
      if (hi < 0 || lo < 0) return PathError::BadPercent;
      const auto value = static_cast<uint8_t>(hi * 16 + lo);
      if (value == 0) return PathError::EncodedNul;
      if (value == '/' || value == '\\') return PathError::EncodedSlash;
      if (kClass[value] & kUnreserved) {
        out.push_back(static_cast<char>(value));
      } else {
        out.push_back('%');
        out.push_back(kHexUpper[value >> 4]);
        out.push_back(kHexUpper[value & 0xF]);
      }
      i += 2;
    } else if (kClass[c] & kPchar) {
      out.push_back(static_cast<char>(c));
    } else if (c == ';' && options.parameters == PathOptions::Parameters::Keep) {
      out.push_back(';');
    } else if (c == ';') {
      if (options.parameters == PathOptions::Parameters::Reject) return PathError::Parameter;
      return PathError::None;  // Strip: the rest of the segment is its parameters
    } else {
      return PathError::InvalidCharacter;
    }
  }
  return PathError::None;
}

}  // namespace

// One pass over the segments. `out` holds the output so far as "/seg/seg" (empty = root), each
// segment preceded by its '/'; a dot segment is recognised after decoding ("%2e%2E" is ".."), so
// "/a/%2e%2e/b" cannot smuggle a climb past the router. `out` never grows beyond raw.size(): every
// byte written stands for at least one byte consumed, so a reserved buffer is never reallocated.
PathError normalizePath(std::string_view raw, std::string& out, const PathOptions& options) {
  out.clear();
  if (raw.empty() || raw.front() != '/') return PathError::NotOriginForm;

  bool trailing_slash = false;  // does the result end in '/' (RFC 3986 §5.2.4 keeps it)
  size_t pos = 1;               // start of the current raw segment
  while (true) {
    const size_t end = raw.find('/', pos);
    const std::string_view segment =
        raw.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    const bool last = end == std::string_view::npos;

    if (segment.empty()) {
      // "//" collapses; an empty last segment is the trailing slash of "/a/".
      trailing_slash = true;
    } else {
      const size_t start = out.size();
      out.push_back('/');
      if (const PathError error = appendSegment(segment, out, options); error != PathError::None) {
        out.clear();
        return error;
      }
      const std::string_view decoded = std::string_view(out).substr(start + 1);
      if (decoded.empty()) {
        out.resize(start);  // nothing but parameters: like an empty segment, it collapses
        trailing_slash = true;
      } else if (decoded == ".") {
        out.resize(start);
        trailing_slash = true;
      } else if (decoded == "..") {
        out.resize(start);
        // Drop the previous segment; at the root there is none, so ".." stays at the root.
        out.resize(out.empty() ? 0 : out.rfind('/'));
        trailing_slash = true;
      } else {
        trailing_slash = false;
      }
    }
    if (last) break;
    pos = end + 1;
  }
  if (out.empty() || trailing_slash) out.push_back('/');
  if (options.lowercase) lowercaseLetters(out);
  return PathError::None;
}

std::string percentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    const int hi = c == '%' && i + 2 < in.size() ? hexValue(in[i + 1]) : -1;
    const int lo = hi >= 0 ? hexValue(in[i + 2]) : -1;
    if (lo >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c == '+' && plus_is_space ? ' ' : c);
    }
  }
  return out;
}

}  // namespace portico::http
