#pragma once
// A route's filter factories, built from its config (the one place that knows every filter),
// and the chain that runs one request's filters through their phases (filters/filter.hpp).

#include <span>

#include "config/model.hpp"
#include "filters/filter.hpp"

namespace portico::auth {
class Authenticator;
}
namespace portico::ratelimit {
class Limiter;
}

namespace portico::filters {

// What the filters are built with besides the route's own config.
struct FilterDeps {
  const auth::Authenticator& authenticator;
  const std::vector<uint32_t>& auth_providers;  // the route's, as the authenticator's indexes
  const ratelimit::Limiter& limiter;
  uint32_t route_index;        // in the snapshot
  const config::Redis* redis;  // null without a redis section
};

FilterFactories buildFilterFactories(const config::Route& route, const FilterDeps& deps);
// Whether the route's filters answer CORS preflights themselves: a preflight is then routed as
// the request it announces, since the route's `methods` need not list OPTIONS.
bool answersPreflights(const config::Route& route);

// One request's filters. Request phases run in route order and stop for good once a filter
// replied; response phases run in reverse order (over the gateway's own answers too); complete
// runs once, after which nothing runs. A filter's StopIteration pauses the chain until the
// stream calls resume(), which goes on with the next filter of the paused phase.
class FilterChain {
 public:
  // Makes the route's filters for one request, in `arena` (which outlives the chain's use).
  void create(const FilterFactories& factories, Arena& arena);
  bool empty() const { return filters_.empty(); }
  bool paused() const { return paused_; }
  bool completed() const { return completed_; }

  FilterStatus requestHeaders(FilterCallbacks& stream, const RequestInfo& request);
  // `data` stays valid until the phase is done (also while it is paused).
  FilterStatus requestBody(FilterCallbacks& stream, std::string_view data, bool end);
  FilterStatus responseHeaders(FilterCallbacks& stream, ResponseInfo& response);
  FilterStatus responseBody(FilterCallbacks& stream, std::string_view data, bool end);
  // After a StopIteration and the filter's resume(): the rest of the paused phase.
  FilterStatus resume(FilterCallbacks& stream);
  // A filter replied after a StopIteration: the paused request phase ends there.
  void replied();
  void complete(const StreamOutcome& outcome);

 private:
  enum class Phase : uint8_t { RequestHeaders, RequestBody, ResponseHeaders, ResponseBody };
  FilterStatus run(FilterCallbacks& stream, Phase phase, size_t from);
  FilterStatus runOne(FilterCallbacks& stream, Phase phase, Filter& filter);
  static bool isRequestPhase(Phase phase) {
    return phase == Phase::RequestHeaders || phase == Phase::RequestBody;
  }

  std::span<Filter*> filters_;
  // The paused phase and what it was given.
  Phase phase_ = Phase::RequestHeaders;
  size_t paused_at_ = 0;  // position in the phase's order
  const RequestInfo* request_ = nullptr;
  ResponseInfo* response_ = nullptr;
  std::string_view data_;
  bool end_ = false;
  bool paused_ = false;
  bool request_replied_ = false;
  bool completed_ = false;
};

}  // namespace portico::filters
