#pragma once
// An address range of the config (trusted_proxies, a route's ip rules), and the one match of an
// address against it.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

namespace portico::config {

// Addresses are 16 bytes: IPv4 ones IPv4-mapped (::ffff:a.b.c.d), so one compare serves both.
using Address16 = std::array<uint8_t, 16>;

inline bool isIpv4Mapped(const Address16& address) {
  constexpr std::array<uint8_t, 12> kPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(kPrefix.begin(), kPrefix.end(), address.begin());
}

struct Cidr {
  Address16 address{};
  uint8_t prefix_len = 0;  // 0..128, in the IPv6 space
  std::string text;        // as written, for messages

  // An IPv4 range (written as one, or inside ::ffff:0:0/96).
  bool ipv4() const { return prefix_len >= 96 && isIpv4Mapped(address); }
  bool contains(const Address16& other) const {
    const unsigned full = prefix_len / 8;
    if (!std::equal(address.begin(), address.begin() + full, other.begin())) return false;
    const unsigned rest = prefix_len % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (other[full] & mask) == (address[full] & mask);
  }
};

}  // namespace portico::config
