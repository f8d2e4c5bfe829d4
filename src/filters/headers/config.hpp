#pragma once
// A route's `headers: {request: {set, remove}, response: {set, remove}}`, as the loader hands
// it to this filter.

#include <string>
#include <utility>
#include <vector>

#include "config/context_fwd.hpp"

namespace portico::filters {

struct HeaderEdits {
  std::vector<std::pair<std::string, std::string>> set;  // names as written, values as written
  std::vector<std::string> remove;                       // lowercased
};

// Reads the route's `headers` value into `request` and `response`; problems are reported on
// `ctx` (a field that cannot be set, a name that is not a token, a value with CR, LF or NUL).
void parseHeaders(config::detail::Context& ctx, const config::detail::Item& item,
                  HeaderEdits& request, HeaderEdits& response);

}  // namespace portico::filters
