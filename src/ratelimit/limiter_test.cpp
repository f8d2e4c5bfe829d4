// Compiling a config's limits: which counters a request touches, under which keys, and the
// periods of quotas.

#include "ratelimit/limiter.hpp"

#include <gtest/gtest.h>

#include "config/loader.hpp"

namespace portico::ratelimit {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

config::Config load(std::string_view yaml) {
  config::LoadResult r = config::loadConfigString(
      yaml, "t.yaml", [](const std::string&) { return std::optional<std::string>(); });
  EXPECT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format());
  return r.config ? std::move(*r.config) : config::Config{};
}

constexpr std::string_view kConfig = R"(listeners: [{address: 127.0.0.1:8080}]
upstreams: {echo: {builtin: echo}}
auth_providers: {keys: {type: api_key}}
plans:
  free: {rate_limit: {limit: 2, window: 1m}, quota: {limit: 100, period: month}}
  default: {rate_limit: {limit: 1, window: 1m}}
consumers:
  - {name: alice, plan: free, api_keys: [a]}
  - {name: bob, api_keys: [b]}
routes:
  - name: users
    match: {path_prefix: /}
    upstream: echo
    auth: [keys]
    rate_limit:
      - {key: [ip, 'header:X-Tenant'], limit: 5}
      - {limit: plan}
)";

TEST(Limiter, TouchesTheRouteLimitsThenThePlanAndItsQuota) {
  config::Config cfg = load(kConfig);
  Limiter limiter(cfg);
  http::HeaderField headers[] = {{"X-Tenant", "acme"}};
  RequestFacts facts{"10.0.0.1", &cfg.consumers[0], headers, nullptr};
  std::vector<Touch> touches;
  size_t count = 0;
  const int64_t now = 1'795'000'000 * kSecond;
  limiter.collect(0, facts, now, touches, count);
  ASSERT_EQ(count, 3u);
  EXPECT_EQ(touches[0].limit->policy, "\"users-ip-header_x-tenant\";q=5;w=1");
  EXPECT_NE(touches[0].key.find("10.0.0.1\x1f" "acme"), std::string::npos);
  EXPECT_EQ(touches[1].limit->policy, "\"plan\";q=2;w=60");
  EXPECT_EQ(touches[1].limit->message, "rate limit of 2 per 1m exceeded");
  EXPECT_EQ(touches[2].limit->kind, CompiledLimit::Kind::Quota);
  EXPECT_EQ(touches[2].limit->message, "quota of 100 per month exceeded");
  EXPECT_LE(touches[2].period.start_ns, now);
  EXPECT_GT(touches[2].period.end_ns, now);
  EXPECT_EQ(touches[2].limit->redis_args[0], "q");
  EXPECT_EQ(touches[1].limit->redis_args[0], "g");
  EXPECT_EQ(touches[1].limit->redis_args[2], "60000000");  // the window in µs

  // Different tenants, different counters; a consumer without a plan gets "default".
  http::HeaderField other[] = {{"X-Tenant", "globex"}};
  RequestFacts bob{"10.0.0.1", &cfg.consumers[1], other, nullptr};
  std::vector<Touch> bob_touches;
  limiter.collect(0, bob, now, bob_touches, count);
  ASSERT_EQ(count, 2u);
  EXPECT_NE(bob_touches[0].key, touches[0].key);
  EXPECT_EQ(bob_touches[1].limit->policy, "\"plan\";q=1;w=60");
}

// `claim:NAME` parts read the request's claims through ClaimSource, whatever parsed them.
TEST(Limiter, ClaimKeysReadTheClaimSource) {
  config::Config cfg = load(R"(listeners: [{address: 127.0.0.1:8080}]
upstreams: {echo: {builtin: echo}}
auth_providers: {keys: {type: api_key}}
consumers: [{name: alice, api_keys: [a]}]
routes:
  - {name: users, match: {path_prefix: /}, upstream: echo, auth: [keys],
     rate_limit: {key: 'claim:tenant', limit: 5}}
)");
  struct Claims final : ClaimSource {
    std::string claim(const std::string& name) const override {
      return name == "tenant" ? tenant : std::string();
    }
    std::string tenant;
  };
  Limiter limiter(cfg);
  Claims acme, globex;
  acme.tenant = "acme";
  globex.tenant = "globex";
  std::vector<Touch> a, b, none;
  size_t count = 0;
  limiter.collect(0, RequestFacts{"10.0.0.1", nullptr, {}, &acme}, 0, a, count);
  ASSERT_EQ(count, 1u);
  EXPECT_NE(a[0].key.find("acme"), std::string::npos) << a[0].key;
  limiter.collect(0, RequestFacts{"10.0.0.1", nullptr, {}, &globex}, 0, b, count);
  limiter.collect(0, RequestFacts{"10.0.0.1", nullptr, {}, nullptr}, 0, none, count);
  EXPECT_NE(a[0].key, b[0].key);
  EXPECT_NE(a[0].key, none[0].key);
}

TEST(Limiter, CalendarMonths) {
  CompiledLimit month;
  month.calendar_month = true;
  // 2026-11-23T12:00:00Z
  Window p = quotaPeriod(month, 1'795'435'200 * kSecond);
  EXPECT_EQ(p.start_ns, 1'793'491'200 * kSecond);  // 2026-11-01
  EXPECT_EQ(p.end_ns, 1'796'083'200 * kSecond);    // 2026-12-01
  // 2026-12-31T23:59:59Z rolls into 2027.
  p = quotaPeriod(month, 1'798'761'599 * kSecond);
  EXPECT_EQ(p.start_ns, 1'796'083'200 * kSecond);
  EXPECT_EQ(p.end_ns, 1'798'761'600 * kSecond);  // 2027-01-01
}

TEST(Limiter, KnowsWhetherWorkersAskRedisAndHowOftenToSync) {
  constexpr std::string_view kHead = R"(listeners: [{address: 127.0.0.1:8080}]
upstreams: {echo: {builtin: echo}}
redis: {address: 127.0.0.1:6379}
routes:
  - name: users
    match: {path_prefix: /}
    upstream: echo
    auth: public
    rate_limit:
)";
  config::Config batched = load(std::string(kHead) +
      "      - {name: a, limit: 50, window: 10s, algorithm: fixed_window, store: redis, "
      "sync: 200ms}\n"
      "      - {name: b, limit: 50, window: 10s, algorithm: sliding_window, store: redis, "
      "sync: 50ms}\n");
  Limiter only_batched(batched);
  EXPECT_FALSE(only_batched.asksRedis());  // the sync thread has its own connection
  EXPECT_EQ(only_batched.shortestSyncNs(), 50'000'000);

  config::Config direct = load(std::string(kHead) + "      - {limit: 5, store: redis}\n");
  Limiter per_request(direct);
  EXPECT_TRUE(per_request.asksRedis());
  EXPECT_EQ(per_request.shortestSyncNs(), 0);
}

}  // namespace
}  // namespace portico::ratelimit
