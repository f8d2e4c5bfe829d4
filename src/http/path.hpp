#pragma once
// Request path normalization (SPEC §4), done once before routing and authorization; the result is
// what gets forwarded, so what the router saw is what the upstream gets.

#include <string>
#include <string_view>

namespace portico::http {

enum class PathError : uint8_t {
  None,
  NotOriginForm,     // does not start with '/'
  BadPercent,        // '%' not followed by two hex digits
  EncodedSlash,      // %2F or %5C: refused, an upstream that decodes them would see other segments
  EncodedNul,        // %00
  InvalidCharacter,  // a byte not allowed in a path (controls, space, non-ASCII, '#', ...)
  Parameter,         // a ';' path parameter, under PathOptions::Parameters::Reject
};

struct PathOptions {
  // `;` parameters of a segment ("/a;v=1/b"). Servlet containers drop them before they resolve
  // dot segments, so to them "/admin;x" is "/admin" and "/p/..;/admin" is "/admin". Strip does
  // the same here, before dot segments are resolved; Keep leaves them as path data (for callers
  // that only compare paths); Reject refuses the path.
  enum class Parameters : uint8_t { Keep, Strip, Reject };
  Parameters parameters = Parameters::Strip;
  // ASCII letters are lowercased (escapes keep their upper-case hex digits), for upstreams that
  // ignore case in paths.
  bool lowercase = false;
};

// Normalizes `raw` (the path part of an origin-form target, without '?query') into `out`:
// - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded, other escapes
//   are kept with upper-case hex digits;
// - runs of '/' collapse into one;
// - "." and ".." segments are removed (RFC 3986 §5.2.4); ".." never climbs above the root;
// - a trailing '/' is kept (it is significant to many upstreams);
// - `;` parameters and letter case as `options` say.
// `out` is cleared first; its capacity is reused, so the hot path does not allocate.
PathError normalizePath(std::string_view raw, std::string& out, const PathOptions& options = {});

// Every %XX decoded (`plus_is_space`: '+' too, as in a query string); a malformed escape stays
// as sent. For values taken out of a path or a query, not for routing (normalizePath).
std::string percentDecode(std::string_view in, bool plus_is_space);

}  // namespace portico::http
