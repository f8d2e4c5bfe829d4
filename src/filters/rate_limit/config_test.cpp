// redis, plans, consumers' plan, and a route's rate_limit and concurrency_limit.

#include <gtest/gtest.h>

#include "config/loader.hpp"

namespace portico::config {
namespace {

constexpr std::string_view kHead = R"(listeners:
  - address: 127.0.0.1:8080
upstreams:
  echo: {builtin: echo}
auth_providers:
  keys: {type: api_key}
)";

std::optional<std::string> noEnv(const std::string&) { return std::nullopt; }

LoadResult load(std::string_view top, std::string_view limits, std::string_view auth = "[keys]") {
  std::string yaml = std::string(kHead) + std::string(top) +
                     "routes:\n  - name: users\n    match: {path_prefix: /}\n    upstream: echo\n"
                     "    auth: " + std::string(auth) + "\n" + std::string(limits);
  return loadConfigString(yaml, "t.yaml", noEnv);
}

std::string errors(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.format() + "\n";
  return out;
}

TEST(LoaderRateLimit, ReadsSync) {
  LoadResult r = load("redis: {address: 127.0.0.1:6390}\n",
                      "    rate_limit: {limit: 100, window: 10s, store: redis,\n"
                      "                 algorithm: sliding_window, sync: 250ms}\n");
  ASSERT_TRUE(r.config) << errors(r);
  EXPECT_EQ(r.config->routes[0].rate_limits[0].sync.count(), 250);
}

TEST(LoaderRateLimit, ReadsEveryField) {
  LoadResult r = load(
      "redis: {address: 127.0.0.1:6390, timeout: 20ms, on_error: deny, key_prefix: 'x:'}\n",
      "    concurrency_limit: 7\n"
      "    rate_limit:\n"
      "      - {key: ip, limit: 20, window: 1s, burst: 40}\n"
      "      - {name: tenants, key: [ip, 'header:X-Tenant'], limit: 5, window: 1m,\n"
      "         algorithm: sliding_window, store: redis}\n"
      "      - {key: route, limit: 3, mode: delay, max_delay: 2s}\n");
  ASSERT_TRUE(r.config) << errors(r);
  const Route& route = r.config->routes[0];
  EXPECT_EQ(route.concurrency_limit, 7u);
  ASSERT_EQ(route.rate_limits.size(), 3u);
  const RateLimit& a = route.rate_limits[0];
  EXPECT_EQ(a.name, "users-ip");
  EXPECT_EQ(a.limit, 20u);
  EXPECT_EQ(a.burst, 40u);
  const RateLimit& b = route.rate_limits[1];
  EXPECT_EQ(b.name, "tenants");
  ASSERT_EQ(b.key.size(), 2u);
  EXPECT_EQ(b.key[1].kind, RateLimitKeyPart::Kind::Header);
  EXPECT_EQ(b.key[1].name, "x-tenant");
  EXPECT_EQ(b.store, RateLimit::Store::Redis);
  EXPECT_EQ(b.window.count(), 60'000);
  EXPECT_EQ(route.rate_limits[2].mode, RateLimit::Mode::Delay);
  EXPECT_EQ(route.rate_limits[2].max_delay.count(), 2'000);
  EXPECT_EQ(route.rate_limits[2].name, "users-route");
  ASSERT_TRUE(r.config->redis);
  EXPECT_FALSE(r.config->redis->on_error_allow);
  EXPECT_EQ(r.config->redis->key_prefix, "x:");
  EXPECT_EQ(r.config->redis->port, 6390);
}

TEST(LoaderRateLimit, OneMapIsOneLimit) {
  LoadResult r = load("", "    rate_limit: {limit: 5, key: 'header:X-Api-Key'}\n");
  ASSERT_TRUE(r.config) << errors(r);
  ASSERT_EQ(r.config->routes[0].rate_limits.size(), 1u);
  EXPECT_EQ(r.config->routes[0].rate_limits[0].name, "users-header_x-api-key");
}

TEST(LoaderRateLimit, PlansAndConsumers) {
  LoadResult r = load(
      "plans:\n"
      "  free: {rate_limit: {limit: 100, window: 1m}, quota: {limit: 10000, period: 1d}}\n"
      "  premium: {rate_limit: {limit: 1000, window: 1m}, quota: {limit: 5, period: month}}\n"
      "consumers:\n  - {name: alice, plan: premium, api_keys: [k]}\n",
      "    rate_limit: [{key: consumer, limit: plan}]\n");
  ASSERT_TRUE(r.config) << errors(r);
  EXPECT_EQ(r.config->consumers[0].plan, "premium");
  const Plan& free = r.config->plans.at("free");
  EXPECT_EQ(free.quota->period.count(), 86'400'000);
  EXPECT_FALSE(free.quota->in_redis);
  EXPECT_TRUE(r.config->plans.at("premium").quota->calendar_month);
  EXPECT_TRUE(r.config->routes[0].rate_limits[0].from_plan);
}

struct Broken {
  std::string_view top;
  std::string_view limits;
  std::string_view auth;
  std::string_view message;
};

TEST(LoaderRateLimit, RefusesWhatWouldMeanNothing) {
  const Broken cases[] = {
      {"", "    rate_limit: {limit: 5, algorithm: fixed_window, burst: 2}\n", "[keys]",
       "\"burst\" applies to algorithm: gcra only"},
      {"", "    rate_limit: {limit: 5, algorithm: fixed_window, mode: delay}\n", "[keys]",
       "\"mode: delay\" needs algorithm: gcra"},
      {"", "    rate_limit: {limit: 5, key: consumer}\n", "public",
       "rate limit key \"consumer\" on route \"users\" needs auth providers"},
      {"", "    rate_limit: {limit: plan}\n", "[keys]",
       "\"limit: plan\" needs a top-level \"plans\" section"},
      {"consumers:\n  - {name: a, plan: gold, api_keys: [k]}\n", "", "[keys]",
       "unknown plan \"gold\""},
      {"", "    rate_limit: {limit: 5, key: 'header:'}\n", "[keys]", "invalid rate limit key"},
      {"", "    rate_limit: {limit: 0}\n", "[keys]", "\"limit\""},
      {"", "    rate_limit: {limit: 5, algorithm: fixed_window, sync: 100ms}\n", "[keys]",
       "\"sync\" needs store: redis"},
      {"", "    rate_limit: {limit: 5, store: redis}\n", "[keys]",
       "\"store: redis\" needs a top-level \"redis\" section"},
      {"redis: {addresses: ['127.0.0.1:1', '127.0.0.1:2']}\n", "", "[keys]",
       "Redis Cluster (several \"addresses\") is not supported yet"},
      {"redis: {address: 127.0.0.1:1}\n",
       "    rate_limit: {limit: 5, store: redis, sync: 100ms}\n", "[keys]",
       "\"sync\" needs algorithm: fixed_window or sliding_window"},
      {"redis: {address: 127.0.0.1:1}\n",
       "    rate_limit: {limit: 5, store: redis, algorithm: fixed_window, sync: 2s}\n",
       "[keys]", "\"sync\" must not be longer than the window"},
      {"", "    rate_limit: [{limit: 5}, {limit: 6}]\n", "[keys]",
       "duplicate rate limit name \"users-ip\""},
      {"", "    rate_limit: {limit: 5, max_delay: 1s}\n", "[keys]",
       "\"max_delay\" applies to mode: delay only"},
      {"plans: {free: {rate_limit: {limit: 1}}}\n", "    rate_limit: {limit: plan, window: 1s}\n",
       "[keys]", "\"window\" cannot be set with \"limit: plan\""},
      {"", "    concurrency_limit: 0\n", "[keys]", "\"concurrency_limit\""},
      {"plans: {free: {quota: {limit: 5, period: 1week}}}\n", "", "[keys]", "invalid duration"},
  };
  for (const Broken& c : cases) {
    LoadResult r = load(c.top, c.limits, c.auth);
    EXPECT_FALSE(r.config) << c.limits;
    EXPECT_NE(errors(r).find(c.message), std::string::npos)
        << "wanted: " << c.message << "\ngot: " << errors(r);
  }
}

}  // namespace
}  // namespace portico::config
