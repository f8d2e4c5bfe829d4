#pragma once
// Builds a route's filters from its config: the one place that knows every filter.

#include "config/model.hpp"
#include "filters/filter.hpp"

namespace portico::filters {

RequestFilters buildRequestFilters(const config::Route& route);

}  // namespace portico::filters
