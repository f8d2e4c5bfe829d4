#pragma once
// `ip: {allow, deny}`: 403 `forbidden` for a client address the route does not admit. Deny wins;
// with an allow list, an address outside it is denied; an IPv4 rule never matches an IPv6
// client, nor an IPv6 rule an IPv4 one.

#include "filters/filter.hpp"
#include "filters/ip_rules/config.hpp"

namespace portico::filters {

class IpRulesFactory final : public FilterFactory {
 public:
  explicit IpRulesFactory(IpRulesConfig rules) : rules_(std::move(rules)) {}
  Filter& create(Arena& arena) const override;
  bool admits(const net::SocketAddress& client) const;

 private:
  IpRulesConfig rules_;
};

class IpRulesFilter final : public Filter {
 public:
  explicit IpRulesFilter(const IpRulesFactory& rules) : rules_(rules) {}
  FilterStatus onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) override;

 private:
  const IpRulesFactory& rules_;
};

}  // namespace portico::filters
