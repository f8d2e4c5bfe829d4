#include "filters/chain.hpp"

#include "filters/auth/auth.hpp"
#include "filters/cors/cors.hpp"
#include "filters/headers/headers.hpp"
#include "filters/ip_rules/ip_rules.hpp"
#include "filters/max_body_bytes/max_body_bytes.hpp"
#include "filters/rate_limit/rate_limit.hpp"

namespace portico::filters {

FilterFactories buildFilterFactories(const config::Route& route, const FilterDeps& deps) {
  FilterFactories factories;
  // Address rules first: a denied client learns nothing, not even the CORS policy. CORS before
  // auth: a preflight carries no credentials.
  if (route.ip) factories.push_back(std::make_unique<IpRulesFactory>(*route.ip));
  if (route.cors) factories.push_back(std::make_unique<CorsFactory>(*route.cors));
  if (!deps.auth_providers.empty()) {
    factories.push_back(
        std::make_unique<AuthFactory>(deps.authenticator, deps.auth_providers, route.authorize));
  }
  if (route.max_body_bytes) {
    factories.push_back(std::make_unique<MaxBodyBytesFactory>(*route.max_body_bytes));
  }
  if (hasHeaderEdits(route)) {
    factories.push_back(
        std::make_unique<HeadersFactory>(route.request_headers, route.response_headers));
  }
  // Limits after auth: they count per consumer, and an unauthenticated request costs none.
  if (route.concurrency_limit > 0 || deps.limiter.hasLimits(deps.route_index)) {
    factories.push_back(std::make_unique<RateLimitFactory>(RateLimitFactory::Settings{
        deps.route_index, route.name, route.concurrency_limit, &deps.limiter, deps.redis}));
  }
  return factories;
}

bool answersPreflights(const config::Route& route) { return route.cors.has_value(); }

void FilterChain::create(const FilterFactories& factories, Arena& arena) {
  filters_ = arena.array<Filter*>(factories.size());
  for (size_t i = 0; i < factories.size(); ++i) filters_[i] = &factories[i]->create(arena);
}

FilterStatus FilterChain::requestHeaders(FilterCallbacks& stream, const RequestInfo& request) {
  request_ = &request;
  return run(stream, Phase::RequestHeaders, 0);
}

FilterStatus FilterChain::requestBody(FilterCallbacks& stream, std::string_view data, bool end) {
  data_ = data;
  end_ = end;
  return run(stream, Phase::RequestBody, 0);
}

FilterStatus FilterChain::responseHeaders(FilterCallbacks& stream, ResponseInfo& response) {
  response_ = &response;
  return run(stream, Phase::ResponseHeaders, 0);
}

FilterStatus FilterChain::responseBody(FilterCallbacks& stream, std::string_view data, bool end) {
  data_ = data;
  end_ = end;
  return run(stream, Phase::ResponseBody, 0);
}

FilterStatus FilterChain::resume(FilterCallbacks& stream) {
  if (!paused_ || completed_) return FilterStatus::StopIteration;
  paused_ = false;
  return run(stream, phase_, paused_at_ + 1);
}

void FilterChain::replied() {
  paused_ = false;
  if (isRequestPhase(phase_)) request_replied_ = true;
}

void FilterChain::complete(const StreamOutcome& outcome) {
  if (completed_) return;
  completed_ = true;
  paused_ = false;
  for (Filter* filter : filters_) filter->onComplete(outcome);
}

FilterStatus FilterChain::run(FilterCallbacks& stream, Phase phase, size_t from) {
  if (completed_ || paused_) return FilterStatus::StopIteration;
  if (isRequestPhase(phase) && request_replied_) return FilterStatus::Replied;
  const bool reverse = !isRequestPhase(phase);
  for (size_t i = from; i < filters_.size(); ++i) {
    Filter& filter = *filters_[reverse ? filters_.size() - 1 - i : i];
    FilterStatus status = runOne(stream, phase, filter);
    if (completed_) return FilterStatus::StopIteration;  // the stream ended inside the phase
    if (status == FilterStatus::Continue) continue;
    if (status == FilterStatus::StopIteration) {
      phase_ = phase;
      paused_at_ = i;
      paused_ = true;
    } else if (isRequestPhase(phase)) {
      request_replied_ = true;
    }
    return status;
  }
  return FilterStatus::Continue;
}

FilterStatus FilterChain::runOne(FilterCallbacks& stream, Phase phase, Filter& filter) {
  switch (phase) {
    case Phase::RequestHeaders:
      return filter.onRequestHeaders(stream, *request_);
    case Phase::RequestBody:
      return filter.onRequestBody(stream, data_, end_);
    case Phase::ResponseHeaders:
      return filter.onResponseHeaders(stream, *response_);
    case Phase::ResponseBody:
      return filter.onResponseBody(stream, data_, end_);
  }
  return FilterStatus::Continue;
}

}  // namespace portico::filters
