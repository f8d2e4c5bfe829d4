#include "filters/ip_rules/ip_rules.hpp"

#include <algorithm>

namespace portico::filters {
namespace {

// A rule matches only clients of its own family.
bool anyContains(const std::vector<config::Cidr>& cidrs, const config::Address16& address,
                 bool ipv4) {
  return std::any_of(cidrs.begin(), cidrs.end(), [&](const config::Cidr& cidr) {
    return cidr.ipv4() == ipv4 && cidr.contains(address);
  });
}

}  // namespace

bool IpRulesFilter::admits(const net::SocketAddress& client) const {
  const config::Address16 address = client.asV6Bytes();
  const bool ipv4 = config::isIpv4Mapped(address);
  if (anyContains(rules_.deny, address, ipv4)) return false;
  return rules_.allow.empty() || anyContains(rules_.allow, address, ipv4);
}

std::optional<Reply> IpRulesFilter::onRequestHead(const RequestInfo& request, std::string&) const {
  if (admits(request.client)) return std::nullopt;
  return Reply{http::ErrorCode::Forbidden, "client address not allowed on this route"};
}

}  // namespace portico::filters
