#pragma once
// Builds a route's filters from its config: the one place that knows every filter.

#include "config/model.hpp"
#include "filters/filter.hpp"

namespace portico::filters {

RequestFilters buildRequestFilters(const config::Route& route);
// Whether the route's filters answer CORS preflights themselves: a preflight is then routed as
// the request it announces, since the route's `methods` need not list OPTIONS.
bool answersPreflights(const config::Route& route);

}  // namespace portico::filters
