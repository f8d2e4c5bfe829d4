#pragma once
// `cors`: Cross-Origin Resource Sharing (the Fetch standard, §3.2). A preflight is answered
// here, 204 without reaching auth, limits or the upstream; other requests from an allowed
// origin get the Access-Control-* fields added to their response, whoever makes it. An origin
// or a method outside the policy gets no Access-Control-Allow-Origin, which is how a browser
// learns the answer is no.

#include "filters/cors/config.hpp"
#include "filters/filter.hpp"

namespace portico::filters {

class CorsFilter final : public RequestFilter {
 public:
  explicit CorsFilter(CorsConfig config);
  std::optional<Reply> onRequestHead(const RequestInfo& request,
                                     std::string& response_headers) const override;

 private:
  bool allowsOrigin(std::string_view origin) const;
  bool allowsMethod(std::string_view method) const;

  CorsConfig config_;
  std::string preflight_fields_;  // after Access-Control-Allow-Origin, on an allowed preflight
  std::string response_fields_;   // likewise, on other requests
};

}  // namespace portico::filters
