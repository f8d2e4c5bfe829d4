#include "filters/chain.hpp"

#include "filters/ip_rules/ip_rules.hpp"

namespace portico::filters {

RequestFilters buildRequestFilters(const config::Route& route) {
  RequestFilters filters;
  if (route.ip) filters.push_back(std::make_unique<IpRulesFilter>(*route.ip));
  return filters;
}

}  // namespace portico::filters
