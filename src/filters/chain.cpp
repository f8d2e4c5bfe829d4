#include "filters/chain.hpp"

#include "filters/cors/cors.hpp"
#include "filters/ip_rules/ip_rules.hpp"

namespace portico::filters {

RequestFilters buildRequestFilters(const config::Route& route) {
  RequestFilters filters;
  // Address rules first: a denied client learns nothing, not even the CORS policy.
  if (route.ip) filters.push_back(std::make_unique<IpRulesFilter>(*route.ip));
  if (route.cors) filters.push_back(std::make_unique<CorsFilter>(*route.cors));
  return filters;
}

bool answersPreflights(const config::Route& route) { return route.cors.has_value(); }

}  // namespace portico::filters
