#pragma once
// An address range of the config (trusted_proxies, a route's ip rules).

#include <array>
#include <cstdint>
#include <string>

namespace portico::config {

struct Cidr {
  // IPv4 addresses are stored as IPv4-mapped IPv6 (::ffff:a.b.c.d) so one compare serves both.
  std::array<uint8_t, 16> address{};
  uint8_t prefix_len = 0;  // 0..128, in the IPv6 space
  std::string text;        // as written, for messages
  bool ipv4() const { return text.find('.') != std::string::npos; }
};

}  // namespace portico::config
