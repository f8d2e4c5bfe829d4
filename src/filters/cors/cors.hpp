#pragma once
// `cors`: Cross-Origin Resource Sharing (the Fetch standard, §3.2). A preflight is answered
// here, 204 without reaching auth, limits or the upstream; other requests from an allowed
// origin get the Access-Control-* fields added to their response, whoever makes it. An origin
// or a method outside the policy gets no Access-Control-Allow-Origin, which is how a browser
// learns the answer is no.

#include "filters/cors/config.hpp"
#include "filters/filter.hpp"

namespace portico::filters {

class CorsFactory final : public FilterFactory {
 public:
  explicit CorsFactory(CorsConfig config);
  Filter& create(Arena& arena) const override;

  bool allowsOrigin(std::string_view origin) const;
  bool allowsMethod(std::string_view method) const;
  bool listsHeaders() const { return !config_.headers.empty(); }
  // The fixed fields after Access-Control-Allow-Origin, built once for the route.
  const std::string& preflightFields() const { return preflight_fields_; }
  const std::string& responseFields() const { return response_fields_; }

 private:
  CorsConfig config_;
  std::string preflight_fields_;
  std::string response_fields_;
};

class CorsFilter final : public Filter {
 public:
  CorsFilter(const CorsFactory& policy, Arena& arena) : policy_(policy), arena_(arena) {}
  FilterStatus onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) override;
  FilterStatus onResponseHeaders(FilterCallbacks& stream, ResponseInfo& response) override;

 private:
  enum class Answer : uint8_t { None, Refused, Allowed, PreflightAllowed };
  // A copy in the request's arena: the request head's own bytes may be gone by the response.
  std::string_view keep(std::string_view text);

  const CorsFactory& policy_;
  Arena& arena_;
  Answer answer_ = Answer::None;
  std::string_view origin_;
  std::string_view asked_headers_;  // a preflight's, echoed when the policy lists none
};

}  // namespace portico::filters
