// health_check, outlier, circuit_breaker and retry: defaults, every key, and the mistakes.
#include <gtest/gtest.h>

#include "config/loader.hpp"

namespace portico::config {
namespace {

LoadResult load(std::string_view policies) {
  std::string yaml = R"(
listeners:
  - address: 127.0.0.1:8080
upstreams:
  u:
    endpoints: ["127.0.0.1:9001"]
)";
  yaml += policies;
  yaml += R"(
routes:
  - match: {path_prefix: /}
    upstream: u
    auth: public
)";
  return loadConfigString(yaml, "test.yaml",
                          [](const std::string&) { return std::optional<std::string>(); });
}

std::string firstError(const LoadResult& r) {
  return r.errors.empty() ? std::string("(no error)") : r.errors.front().format();
}

TEST(ResilienceConfig, NoneByDefault) {
  LoadResult r = load("");
  ASSERT_TRUE(r.config) << firstError(r);
  const Upstream& up = r.config->upstreams.at("u");
  EXPECT_FALSE(up.health_check || up.outlier || up.circuit_breaker || up.retry);
}

TEST(ResilienceConfig, EmptySectionsTakeTheDocumentedDefaults) {
  LoadResult r = load(
      "    health_check: {}\n    outlier: {}\n    circuit_breaker: {}\n"
      "    retry: {}\n");
  ASSERT_TRUE(r.config) << firstError(r);
  const Upstream& up = r.config->upstreams.at("u");
  EXPECT_EQ(up.health_check->path, "/");
  EXPECT_EQ(up.health_check->interval, Duration(5000));
  EXPECT_EQ(up.health_check->timeout, Duration(1000));
  EXPECT_EQ(up.health_check->healthy, 2u);
  EXPECT_EQ(up.health_check->unhealthy, 3u);
  EXPECT_EQ(up.outlier->consecutive_failures, 5u);
  EXPECT_EQ(up.outlier->eject_for, Duration(30'000));
  EXPECT_DOUBLE_EQ(up.circuit_breaker->failure_rate, 0.5);
  EXPECT_EQ(up.circuit_breaker->min_requests, 20u);
  EXPECT_EQ(up.circuit_breaker->half_open_requests, 3u);
  EXPECT_EQ(up.retry->attempts, 2u);
  EXPECT_TRUE(up.retry->on_connect_failure && up.retry->on_reset && up.retry->on_timeout);
  EXPECT_EQ(up.retry->statuses, (std::vector<uint16_t>{502, 503, 504}));
  EXPECT_EQ(up.retry->backoff_base, Duration(25));
  EXPECT_EQ(up.retry->backoff_max, Duration(250));
  EXPECT_DOUBLE_EQ(up.retry->budget, 0.2);
  EXPECT_FALSE(up.retry->non_idempotent);
  EXPECT_EQ(up.retry->replay_buffer, 64u * 1024);
}

TEST(ResilienceConfig, ReadsEveryKey) {
  LoadResult r = load(R"(    health_check: {path: "/healthz?full=1", interval: 2s, timeout: 500ms,
                   healthy: 1, unhealthy: 4, statuses: [200, 204], host: users.internal}
    outlier: {consecutive_failures: 3, eject_for: 10s}
    circuit_breaker: {failure_rate: 0.25, window: 30s, min_requests: 7, open_for: 5s,
                      half_open_requests: 1}
    retry: {attempts: 4, on: [reset, 503], backoff: {base: 10ms, max: 1s}, budget: 0.5,
            retry_non_idempotent: true, replay_buffer: 1KiB}
)");
  ASSERT_TRUE(r.config) << firstError(r);
  const Upstream& up = r.config->upstreams.at("u");
  EXPECT_EQ(up.health_check->path, "/healthz?full=1");
  EXPECT_EQ(up.health_check->timeout, Duration(500));
  EXPECT_EQ(up.health_check->statuses, (std::vector<uint16_t>{200, 204}));
  EXPECT_EQ(up.health_check->host, "users.internal");
  EXPECT_EQ(up.outlier->consecutive_failures, 3u);
  EXPECT_EQ(up.circuit_breaker->window, Duration(30'000));
  EXPECT_EQ(up.circuit_breaker->half_open_requests, 1u);
  EXPECT_EQ(up.retry->attempts, 4u);
  EXPECT_FALSE(up.retry->on_connect_failure);
  EXPECT_TRUE(up.retry->on_reset);
  EXPECT_FALSE(up.retry->on_timeout);
  EXPECT_EQ(up.retry->statuses, (std::vector<uint16_t>{503}));
  EXPECT_TRUE(up.retry->retriesStatus(503));
  EXPECT_FALSE(up.retry->retriesStatus(502));
  EXPECT_EQ(up.retry->backoff_max, Duration(1000));
  EXPECT_TRUE(up.retry->non_idempotent);
  EXPECT_EQ(up.retry->replay_buffer, 1024u);
}

TEST(ResilienceConfig, OnIsAKeyNotABoolean) {
  // YAML 1.1 would read `on` as true; the loader reads it as the key it is.
  LoadResult r = load("    retry:\n      on: [timeout]\n");
  ASSERT_TRUE(r.config) << firstError(r);
  EXPECT_TRUE(r.config->upstreams.at("u").retry->on_timeout);
  EXPECT_FALSE(r.config->upstreams.at("u").retry->on_reset);
}

struct Mistake {
  const char* yaml;
  const char* says;
};

class ResilienceMistakes : public ::testing::TestWithParam<Mistake> {};

TEST_P(ResilienceMistakes, AreReportedWithTheirPlace) {
  LoadResult r = load(GetParam().yaml);
  ASSERT_FALSE(r.config) << GetParam().yaml;
  const std::string error = firstError(r);
  EXPECT_NE(error.find(GetParam().says), std::string::npos) << error;
  EXPECT_NE(error.find("test.yaml:"), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(
    All, ResilienceMistakes,
    ::testing::Values(Mistake{"    retry: {attempts: 0}\n", "whole number from 1 to 10"},
                      Mistake{"    retry: {attempts: 11}\n", "whole number from 1 to 10"},
                      Mistake{"    retry: {budget: 2}\n", "budget"},
                      Mistake{"    retry: {on: [418]}\n", "invalid value \"418\" in \"on\""},
                      Mistake{"    retry: {on: [resets]}\n", "invalid value \"resets\" in \"on\""},
                      Mistake{"    retry: {on: []}\n", "on"},
                      Mistake{"    retry: {tries: 2}\n", "tries"},
                      Mistake{"    retry: {backoff: {base: 1s, max: 10ms}}\n", "must not be below"},
                      Mistake{"    retry: {replay_buffer: 1GiB}\n", "at most 64MiB"},
                      Mistake{"    circuit_breaker: {failure_rate: 0}\n", "above 0"},
                      Mistake{"    circuit_breaker: {failure_rate: 1.5}\n", "failure_rate"},
                      Mistake{"    circuit_breaker: {half_open_requests: 0}\n",
                              "half_open_requests"},
                      Mistake{"    circuit_breaker: {window: 0s}\n", "window"},
                      Mistake{"    outlier: {consecutive_failures: 0}\n", "consecutive_failures"},
                      Mistake{"    outlier: {eject_for: soon}\n", "invalid duration \"soon\""},
                      Mistake{"    health_check: {interval: 1s, timeout: 2s}\n", "must not exceed"},
                      Mistake{"    health_check: {interval: 5ms, timeout: 1ms}\n", "at least 10ms"},
                      Mistake{"    health_check: {path: healthz}\n", "starting with '/'"},
                      Mistake{"    health_check: {statuses: [99]}\n", "statuses"},
                      Mistake{"    health_check: {host: \"a b\"}\n", "host"},
                      Mistake{"    health_check: {unhealthy: 0}\n", "unhealthy"}));

TEST(ResilienceConfig, BuiltinUpstreamsTakeNoPolicies) {
  std::string yaml = R"(
listeners:
  - address: 127.0.0.1:8080
upstreams:
  e: {builtin: echo, retry: {attempts: 2}}
routes:
  - match: {path_prefix: /}
    upstream: e
    auth: public
)";
  LoadResult r = loadConfigString(yaml, "test.yaml",
                                  [](const std::string&) { return std::optional<std::string>(); });
  ASSERT_FALSE(r.config);
  EXPECT_NE(firstError(r).find("\"retry\" cannot be used with \"builtin\""), std::string::npos)
      << firstError(r);
}

}  // namespace
}  // namespace portico::config

namespace portico::config {
namespace {

TEST(DnsConfig, ReadsTheNameTheRefreshAndTheResolvers) {
  std::string yaml = R"(
listeners:
  - address: 127.0.0.1:8080
dns_resolvers: ["127.0.0.1", "127.0.0.1:5353", "[::1]"]
upstreams:
  u: {dns: "users.internal:8080", dns_refresh: 5s}
routes:
  - match: {path_prefix: /}
    upstream: u
    auth: public
)";
  LoadResult r = loadConfigString(yaml, "test.yaml",
                                  [](const std::string&) { return std::optional<std::string>(); });
  ASSERT_TRUE(r.config) << r.errors.front().format();
  const Upstream& up = r.config->upstreams.at("u");
  ASSERT_TRUE(up.dns);
  EXPECT_EQ(up.dns->host, "users.internal");
  EXPECT_EQ(up.dns->port, 8080);
  EXPECT_EQ(up.dns->text, "users.internal:8080");
  EXPECT_TRUE(up.endpoints.empty());
  EXPECT_EQ(up.dns_refresh, Duration(5000));
  EXPECT_EQ(r.config->dns_resolvers,
            (std::vector<std::string>{"127.0.0.1:53", "127.0.0.1:5353", "[::1]:53"}));
}

}  // namespace
}  // namespace portico::config
