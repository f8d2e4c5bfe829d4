#pragma once
// `ip: {allow, deny}`: 403 `forbidden` for a client address the route does not admit. Deny wins;
// with an allow list, an address outside it is denied; an IPv4 rule never matches an IPv6
// client, nor an IPv6 rule an IPv4 one.

#include "filters/filter.hpp"
#include "filters/ip_rules/config.hpp"

namespace portico::filters {

class IpRulesFilter final : public RequestFilter {
 public:
  explicit IpRulesFilter(IpRulesConfig rules) : rules_(std::move(rules)) {}
  std::optional<Reply> onRequestHead(const RequestInfo& request,
                                     std::string& response_headers) const override;
  bool admits(const net::SocketAddress& client) const;

 private:
  IpRulesConfig rules_;
};

}  // namespace portico::filters
