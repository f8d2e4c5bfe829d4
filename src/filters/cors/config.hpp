#pragma once
// A route's `cors: {origins, methods, headers, expose_headers, credentials, max_age}`.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/context_fwd.hpp"

namespace portico::filters {

struct CorsConfig {
  std::vector<std::string> origins;  // serialized origins, lowercase ("https://a.example:8443")
  bool any_origin = false;           // "*" in origins: every origin (still echoed, never "*")
  std::vector<std::string> methods;  // uppercase; GET HEAD POST PUT PATCH DELETE when not given
  std::vector<std::string> headers;  // request headers allowed; empty: what the preflight asks
  std::vector<std::string> expose_headers;
  bool credentials = false;
  std::optional<uint64_t> max_age_seconds;
};

// Reads the route's `cors` value; reports problems on `ctx` (nullopt when there were any).
std::optional<CorsConfig> parseCors(config::detail::Context& ctx, const config::detail::Item& item);

}  // namespace portico::filters
