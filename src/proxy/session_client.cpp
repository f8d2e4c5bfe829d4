// Who the client is: the peer, or behind trusted proxies the address X-Forwarded-For gives,
// and that address as `key: ip` limits count it.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "proxy/session.hpp"

namespace portico::proxy {
namespace {

void appendNumber(std::string& out, int64_t v) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, end);
}

// An X-Forwarded-For entry, which some proxies write with a port: "192.0.2.1:4711" or
// "[2001:db8::1]:4711" (review L12).
bool parseForwardedFor(std::string_view item, net::SocketAddress& out) {
  if (net::parseNumericAddress(item, 0, out)) return true;
  if (item.starts_with('[')) {
    size_t close = item.find(']');
    if (close == std::string_view::npos || (close + 1 != item.size() && item[close + 1] != ':')) {
      return false;
    }
    return net::parseNumericAddress(item.substr(1, close - 1), 0, out);
  }
  size_t colon = item.find(':');
  return colon != std::string_view::npos && colon == item.rfind(':') &&
         net::parseNumericAddress(item.substr(0, colon), 0, out);
}

// The key of `address` for `key: ip` limits. An IPv6 client holds a whole prefix (a /64 at
// least), so counting per /128 would give it 2^64 buckets (review M6): it counts per prefix.
std::string_view ipKey(const net::SocketAddress& address, unsigned ipv6_prefix,
                       std::string& scratch) {
  auto bytes = address.asV6Bytes();
  const bool v4_mapped =
      std::all_of(bytes.begin(), bytes.begin() + 10, [](uint8_t b) { return b == 0; }) &&
      bytes[10] == 0xff && bytes[11] == 0xff;
  char text[INET6_ADDRSTRLEN + 8];
  if (address.family() != AF_INET6 || v4_mapped || ipv6_prefix >= 128) {
    scratch.assign(text, address.formatHost(text, sizeof text));
    return scratch;
  }
  for (unsigned bit = ipv6_prefix; bit < 128; ++bit) {
    bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  scratch.assign(text).append("/");
  appendNumber(scratch, ipv6_prefix);
  return scratch;
}

}  // namespace

std::string_view Session::limitClientKey(std::string& scratch) {
  const config::Listener& listen = listener();
  const auto& trusted = listen.trusted_proxies;
  if ((trusted.empty() || !inCidrs(trusted, peer_)) && peer_.family() != AF_INET6) {
    return std::string_view(peer_text_, peer_len_);
  }
  return ipKey(clientAddress(), listen.limit_ipv6_prefix, scratch);
}

net::SocketAddress Session::clientAddress() const {
  const auto& trusted = listener().trusted_proxies;
  if (trusted.empty() || !inCidrs(trusted, peer_)) return peer_;
  // Behind trusted proxies: the rightmost X-Forwarded-For address that is not one of them.
  net::SocketAddress found;
  bool any = false;
  for (const auto& h : rq_->head.headers) {
    if (h.name.size() != 15 || !http::equalsIgnoreCase(h.name, "x-forwarded-for")) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      item = http::trimOws(item);
      net::SocketAddress address;
      if (!parseForwardedFor(item, address)) {
        any = false;  // garbage from here on: trust nothing left of it
        continue;
      }
      if (!inCidrs(trusted, address)) {
        found = address;
        any = true;
      }
    }
  }
  return any ? found : peer_;
}

}  // namespace portico::proxy
