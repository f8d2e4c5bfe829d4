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

Filter& IpRulesFactory::create(Arena& arena) const { return arena.make<IpRulesFilter>(*this); }

bool IpRulesFactory::admits(const net::SocketAddress& client) const {
  const config::Address16 address = client.asV6Bytes();
  const bool ipv4 = config::isIpv4Mapped(address);
  if (anyContains(rules_.deny, address, ipv4)) return false;
  return rules_.allow.empty() || anyContains(rules_.allow, address, ipv4);
}

FilterStatus IpRulesFilter::onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) {
  if (rules_.admits(request.client)) return Continue;
  stream.reply({http::ErrorCode::Forbidden, "client address not allowed on this route"});
  return Replied;
}

}  // namespace portico::filters
