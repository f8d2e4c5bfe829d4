#pragma once
// A route's `auth` (its providers: JWT, API key, Basic, mTLS, introspection; any one
// authenticates) and `authorize` rules. Checks that are too slow for the worker (password
// hashes, introspection calls) run on a verify pool while the request waits (StopIteration);
// the answer comes back on the worker's loop and finds the filter only if the request still
// waits.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "auth/authenticator.hpp"
#include "config/model.hpp"
#include "core/wait_flag.hpp"
#include "filters/filter.hpp"

namespace portico::filters {

class AuthFactory final : public FilterFactory {
 public:
  AuthFactory(const auth::Authenticator& authenticator, std::vector<uint32_t> providers,
              std::optional<config::Authorize> authorize)
      : authenticator_(authenticator),
        providers_(std::move(providers)),
        authorize_(std::move(authorize)) {}
  Filter& create(Arena& arena) const override;

  const auth::Authenticator& authenticator() const { return authenticator_; }
  const std::vector<uint32_t>& providers() const { return providers_; }
  const std::optional<config::Authorize>& authorize() const { return authorize_; }

 private:
  const auth::Authenticator& authenticator_;  // the snapshot's, which holds this factory
  std::vector<uint32_t> providers_;
  std::optional<config::Authorize> authorize_;
};

class AuthFilter final : public Filter {
 public:
  explicit AuthFilter(const AuthFactory& route) : route_(route) {}
  FilterStatus onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) override;
  void onComplete(const StreamOutcome&) override { waiting_.drop(); }

 private:
  // Authorization, then the answer: Continue, or Replied after replying 400/401/403/503.
  FilterStatus finish(FilterCallbacks& stream, StreamEnvironment& env, auth::AuthResult result);
  void countFailure(StreamEnvironment& env, const auth::AuthResult& result) const;
  FilterStatus startSlowCheck(FilterCallbacks& stream, StreamEnvironment& env,
                              const RequestInfo& request, auth::AuthResult pending);
  void slowCheckDone(FilterCallbacks& stream, uint32_t provider, const std::string& credential,
                     const auth::SlowCheckResult& check);

  const AuthFactory& route_;
  WaitFlag waiting_;  // armed while a slow check runs for this request
};

}  // namespace portico::filters
