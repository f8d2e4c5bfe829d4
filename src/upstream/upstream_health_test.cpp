// Shared health state: sliding counts, the retry budget, outlier ejection (growth, at most half
// the endpoints), state kept across reloads, and the cluster passing over endpoints that are out.
#include "upstream/upstream_health.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "upstream/cluster.hpp"
#include "upstream/connection.hpp"
#include "upstream/sliding_counts.hpp"

namespace portico::upstream {
namespace {

TEST(SlidingCounts, CountsWithinTheWindowOnly) {
  SlidingCounts<2> counts(1000);  // slices of 100 ms
  counts.add(0, 50);
  counts.add(0, 150);
  counts.add(1, 950);
  EXPECT_EQ(counts.sum(999)[0], 2u);
  EXPECT_EQ(counts.sum(999)[1], 1u);
  EXPECT_EQ(counts.sum(1050)[0], 1u);  // the slice of t=50 left
  EXPECT_EQ(counts.sum(2000)[0], 0u);
  EXPECT_EQ(counts.sum(999, 100)[0], 1u);  // counts before `since` are left out
  counts.add(0, 2050);                     // reuses the slot of t=50, afresh
  EXPECT_EQ(counts.sum(2050)[0], 1u);
}

TEST(SlidingCounts, IsExactUnderConcurrentWriters) {
  SlidingCounts<1> counts(10'000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) counts.add(0, 5000);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counts.sum(5000)[0], 40'000u);
}

TEST(RetryBudget, AllowsTheShareOfRequestsPlusTheFloor) {
  RetryBudget budget;
  for (int i = 0; i < 100; ++i) budget.deposit(1000);
  int allowed = 0;
  while (budget.withdraw(0.2, 1000)) ++allowed;
  EXPECT_EQ(allowed, 20 + static_cast<int>(RetryBudget::kFloor));
  // Ten seconds on, the window is empty again: only the floor.
  allowed = 0;
  while (budget.withdraw(0.2, 12'000)) ++allowed;
  EXPECT_EQ(allowed, static_cast<int>(RetryBudget::kFloor));
}

config::OutlierDetection outlier(uint32_t failures, int64_t eject_ms) {
  config::OutlierDetection o;
  o.consecutive_failures = failures;
  o.eject_for = config::Duration(eject_ms);
  return o;
}

TEST(OutlierEjection, EjectsAfterConsecutiveFailuresAndASuccessResetsTheRun) {
  HealthRegistry registry;
  auto health = registry.adopt("u", {"a", "b", "c", "d"});
  const auto settings = outlier(3, 1000);
  health->recordOutcome(settings, 0, true, 100);
  health->recordOutcome(settings, 0, true, 100);
  health->recordOutcome(settings, 0, false, 100);  // the run starts over
  health->recordOutcome(settings, 0, true, 100);
  health->recordOutcome(settings, 0, true, 100);
  EXPECT_TRUE(health->endpoint(0).available(100));
  health->recordOutcome(settings, 0, true, 100);
  EXPECT_FALSE(health->endpoint(0).available(100));
  EXPECT_TRUE(health->endpoint(0).available(1100));
  EXPECT_NE(health->ejectionReason(0).find("3 consecutive failures"), std::string::npos);
}

TEST(OutlierEjection, RepeatEjectionsLastLonger) {
  HealthRegistry registry;
  auto health = registry.adopt("u", {"a", "b"});
  const auto settings = outlier(1, 1000);
  health->recordOutcome(settings, 0, true, 0);
  EXPECT_EQ(health->endpoint(0).ejected_until_ms.load(), 1000u);
  health->recordOutcome(settings, 0, true, 1000);  // fails again as soon as it is back
  EXPECT_EQ(health->endpoint(0).ejected_until_ms.load(), 3000u);
  health->recordOutcome(settings, 0, true, 3000);
  EXPECT_EQ(health->endpoint(0).ejected_until_ms.load(), 6000u);
  // Back for longer than its last ejection lasted: the series starts over.
  health->recordOutcome(settings, 0, true, 20'000);
  EXPECT_EQ(health->endpoint(0).ejected_until_ms.load(), 21'000u);
}

TEST(OutlierEjection, NeverMoreThanHalfTheEndpoints) {
  HealthRegistry registry;
  auto health = registry.adopt("u", {"a", "b", "c", "d", "e"});
  const auto settings = outlier(1, 1000);
  for (size_t i = 0; i < 5; ++i) health->recordOutcome(settings, i, true, 0);
  int out = 0;
  for (size_t i = 0; i < 5; ++i) out += health->endpoint(i).available(0) ? 0 : 1;
  EXPECT_EQ(out, 2);
  auto single = registry.adopt("one", {"a"});
  for (int i = 0; i < 10; ++i) single->recordOutcome(settings, 0, true, 0);
  EXPECT_TRUE(single->endpoint(0).available(0));
}

TEST(HealthRegistry, KeepsStateByUpstreamAndEndpointAcrossReloads) {
  HealthRegistry registry;
  auto before = registry.adopt("u", {"a", "b"});
  before->endpoint(1).check_failed.store(true);
  before->breaker().record(config::CircuitBreaker{}, true, false, 100);
  auto after = registry.adopt("u", {"b", "c"});
  EXPECT_TRUE(after->endpoint(0).check_failed.load());  // "b" kept its verdict
  EXPECT_FALSE(after->endpoint(1).check_failed.load());
  EXPECT_EQ(after->breaker().window(100).failures, 1u);
  auto other = registry.adopt("v", {"b"});
  EXPECT_FALSE(other->endpoint(0).check_failed.load());  // another upstream's "b" is its own
}

TEST(ClusterWithHealth, PassesOverEndpointsThatAreOutAndAvoidsTheOneThatFailed) {
  HealthRegistry registry;
  auto health = registry.adopt("u", {"a", "b", "c"});
  std::vector<EndpointPool> pools(3);
  Cluster cluster(config::Upstream::Balancing::RoundRobin, 0, nullptr, health.get());
  for (auto& pool : pools) cluster.addEndpoint(&pool);
  health->endpoint(1).check_failed.store(true);
  for (int i = 0; i < 6; ++i) EXPECT_NE(cluster.pick(0, 0, Cluster::kNone, 0), 1u);
  // A retry after endpoint 0 failed goes elsewhere while there is somewhere else.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(cluster.pick(0, 0, 0, 0), 2u);
  health->endpoint(2).check_failed.store(true);
  EXPECT_EQ(cluster.pick(0, 0, 0, 0), 0u);  // only the failed one is left: better than none
  health->endpoint(0).check_failed.store(true);
  EXPECT_EQ(cluster.pick(0, 0, Cluster::kNone, 0), Cluster::kNone);
}

}  // namespace
}  // namespace portico::upstream
