#include "filters/ip_rules/ip_rules.hpp"

#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "filters/filter_testing.hpp"

namespace portico::filters {
namespace {

config::LoadResult load(std::string_view ip) { return testing::loadRouteWith("ip", ip); }

IpRulesFactory filterOf(std::string_view ip) {
  config::LoadResult r = load(ip);
  EXPECT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format());
  return IpRulesFactory(r.config ? *r.config->routes[0].ip : IpRulesConfig{});
}

net::SocketAddress address(std::string_view text) {
  net::SocketAddress out;
  EXPECT_TRUE(net::parseNumericAddress(text, 80, out)) << text;
  return out;
}

TEST(IpRules, DenyWinsOverAllow) {
  IpRulesFactory f = filterOf("{allow: [10.0.0.0/8], deny: [10.1.0.0/16]}");
  EXPECT_TRUE(f.admits(address("10.2.3.4")));
  EXPECT_FALSE(f.admits(address("10.1.2.3")));
  EXPECT_FALSE(f.admits(address("192.0.2.1")));  // outside the allow list
  Arena arena;
  testing::RecordingStream stream;
  Filter& filter = f.create(arena);
  EXPECT_EQ(filter.onRequestHeaders(stream, RequestInfo{address("10.1.2.3"), "GET", {}}),
            FilterStatus::Replied);
  ASSERT_EQ(stream.replies, 1);
  EXPECT_EQ(stream.last_reply->code, http::ErrorCode::Forbidden);
  EXPECT_EQ(filter.onRequestHeaders(stream, RequestInfo{address("10.2.3.4"), "GET", {}}),
            FilterStatus::Continue);
  EXPECT_EQ(stream.replies, 1);
}

TEST(IpRules, DenyAloneAdmitsTheRest) {
  IpRulesFactory f = filterOf("{deny: [192.0.2.0/24, '2001:db8::/32']}");
  EXPECT_FALSE(f.admits(address("192.0.2.77")));
  EXPECT_TRUE(f.admits(address("192.0.3.1")));
  EXPECT_FALSE(f.admits(address("2001:db8::1")));
  EXPECT_TRUE(f.admits(address("2001:db9::1")));
}

TEST(IpRules, FamiliesNeverMatchEachOther) {
  IpRulesFactory v4 = filterOf("{allow: [0.0.0.0/0]}");
  EXPECT_TRUE(v4.admits(address("203.0.113.9")));
  EXPECT_FALSE(v4.admits(address("2001:db8::1")));
  EXPECT_FALSE(v4.admits(address("::1")));
  IpRulesFactory v6 = filterOf("{allow: ['::/0']}");
  EXPECT_TRUE(v6.admits(address("2001:db8::1")));
  EXPECT_FALSE(v6.admits(address("203.0.113.9")));
  IpRulesFactory deny_v6 = filterOf("{deny: ['::/0']}");
  EXPECT_TRUE(deny_v6.admits(address("203.0.113.9")));
}

TEST(IpRules, SingleAddressesAndOddPrefixes) {
  IpRulesFactory f = filterOf("{allow: [127.0.0.1, 10.0.0.0/9]}");
  EXPECT_TRUE(f.admits(address("127.0.0.1")));
  EXPECT_FALSE(f.admits(address("127.0.0.2")));
  EXPECT_TRUE(f.admits(address("10.127.255.255")));
  EXPECT_FALSE(f.admits(address("10.128.0.0")));
}

TEST(IpRules, BrokenRulesAreRefusedAtLoad) {
  for (std::string_view bad : {"{allow: [10.0.0.0/33]}", "{deny: [not-an-address]}", "{}",
                               "{allow: []}", "{allowed: [10.0.0.0/8]}", "[10.0.0.0/8]"}) {
    config::LoadResult r = load(bad);
    EXPECT_FALSE(r.config) << bad;
    EXPECT_FALSE(r.errors.empty()) << bad;
  }
}

}  // namespace
}  // namespace portico::filters
