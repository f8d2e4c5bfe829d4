// The blocking lookup under DnsResolver: numeric hosts, the hosts file, the port set on every
// address, duplicates folded, and a resolver that never answers bounded by the timeout.
#include "upstream/dns_resolver.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.hpp"

namespace portico::upstream {
namespace {

std::string text(const net::SocketAddress& address) {
  char host[64];
  address.formatHost(host, sizeof host);
  return std::string(host) + ":" + std::to_string(address.port());
}

TEST(DnsResolver, ANumericHostIsItsOwnAnswer) {
  auto answer = DnsResolver::resolve("127.0.0.1", 8080, {}, 1000);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(text(answer[0]), "127.0.0.1:8080");
}

TEST(DnsResolver, LocalhostComesFromTheHostsFileWithThePortOnEachAddress) {
  auto answer = DnsResolver::resolve("localhost", 9, {}, 2000);
  ASSERT_FALSE(answer.empty());
  for (const auto& address : answer) EXPECT_EQ(address.port(), 9);
}

TEST(DnsResolver, ASilentServerGivesAnEmptyAnswerWithinTheTimeout) {
  // A UDP socket that never answers: the name server of this lookup.
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const std::string server = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  const uint64_t start = monotonicMs();
  auto answer = DnsResolver::resolve("svc.portico.test", 80, {server}, 300);
  EXPECT_TRUE(answer.empty());
  EXPECT_LT(monotonicMs() - start, 1500u);
  ::close(fd);
}

}  // namespace
}  // namespace portico::upstream
