#pragma once
// A route's `ip: {allow: [...], deny: [...]}`: which client addresses may use it.

#include <optional>
#include <vector>

#include "config/cidr.hpp"
#include "config/context_fwd.hpp"

namespace portico::filters {

struct IpRulesConfig {
  std::vector<config::Cidr> allow;  // when non-empty, only these (and not denied) pass
  std::vector<config::Cidr> deny;   // wins over allow
};

// Reads the route's `ip` value; reports problems on `ctx` (nullopt when there were any).
std::optional<IpRulesConfig> parseIpRules(config::detail::Context& ctx,
                                          const config::detail::Item& item);

}  // namespace portico::filters
