#include "filters/ip_rules/ip_rules.hpp"

#include <algorithm>
#include <array>

namespace portico::filters {
namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool contains(const config::Cidr& cidr, const std::array<uint8_t, 16>& address, bool ipv4) {
  if (cidr.ipv4() != ipv4) return false;
  const unsigned full = cidr.prefix_len / 8;
  if (!std::equal(address.begin(), address.begin() + full, cidr.address.begin())) return false;
  const unsigned rest = cidr.prefix_len % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address[full] & mask) == (cidr.address[full] & mask);
}

bool anyContains(const std::vector<config::Cidr>& cidrs, const std::array<uint8_t, 16>& address,
                 bool ipv4) {
  return std::any_of(cidrs.begin(), cidrs.end(),
                     [&](const config::Cidr& cidr) { return contains(cidr, address, ipv4); });
}

}  // namespace

bool IpRulesFilter::admits(const net::SocketAddress& client) const {
  const std::array<uint8_t, 16> address = client.asV6Bytes();
  const bool ipv4 = std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), address.begin());
  if (anyContains(rules_.deny, address, ipv4)) return false;
  return rules_.allow.empty() || anyContains(rules_.allow, address, ipv4);
}

std::optional<Refusal> IpRulesFilter::onRequestHead(const RequestInfo& request) const {
  if (admits(request.client)) return std::nullopt;
  return Refusal{http::ErrorCode::Forbidden, "client address not allowed on this route"};
}

}  // namespace portico::filters
