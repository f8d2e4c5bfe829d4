#pragma once
// The rate_limit filter's configuration: the `plans` section and a route's `rate_limit`, read
// into config::Plan and config::RateLimit (config/model.hpp, which the limiter shares).

#include <map>
#include <string>

#include "config/context_fwd.hpp"
#include "config/model.hpp"

namespace portico::filters {

// The `plans` section; problems are reported on `ctx`.
std::map<std::string, config::Plan> parsePlans(config::detail::Context& ctx,
                                               const config::detail::Item& item,
                                               const config::Config& config);
// A route's `rate_limit` (one limit or a list) into route.rate_limits; the plans and redis are
// read before it.
void parseRouteRateLimits(config::detail::Context& ctx, const config::detail::Item& item,
                          const config::Config& config, config::Route& route);

}  // namespace portico::filters
