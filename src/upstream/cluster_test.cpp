// Endpoint choice: smooth weighted round robin, power of two choices, weighted random, and
// Maglev consistent hashing (the same key to the same endpoint; removing one of N moves ~1/N).
#include "upstream/cluster.hpp"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <random>
#include <string>

#include "upstream/connection.hpp"
#include "upstream/maglev.hpp"

namespace portico::upstream {
namespace {

using Balancing = config::Upstream::Balancing;

struct Pools {
  explicit Pools(size_t n) : pools(n) {}
  Cluster cluster(Balancing balancing, std::vector<uint32_t> weights,
                  const MaglevTable* maglev = nullptr) {
    Cluster c(balancing, 0, maglev);
    for (size_t i = 0; i < pools.size(); ++i) c.addEndpoint(&pools[i], weights[i]);
    return c;
  }
  std::vector<EndpointPool> pools;
};

TEST(Cluster, RoundRobinTakesEachEndpointInTurnFromTheFirstTurn) {
  std::array<EndpointPool, 3> pools;
  Cluster cluster(Balancing::RoundRobin, 1);
  for (auto& pool : pools) cluster.addEndpoint(&pool);
  std::vector<uint32_t> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(cluster.pick());
  EXPECT_EQ(picks, (std::vector<uint32_t>{1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(&cluster.endpoint(2), &pools[2]);
}

TEST(Cluster, OneEndpointIsAlwaysPicked) {
  EndpointPool pool;
  for (Balancing b : {Balancing::RoundRobin, Balancing::LeastRequest, Balancing::Random,
                      Balancing::ConsistentHash}) {
    Cluster cluster(b, 7);
    cluster.addEndpoint(&pool);
    for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(cluster.pick(i * 7919, i * 104729), 0u);
  }
}

TEST(Cluster, SmoothWeightedRoundRobinSpreadsEveryWindowExactly) {
  Pools p(3);
  Cluster c = p.cluster(Balancing::RoundRobin, {5, 1, 1});
  std::string order;
  for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + c.pick());
  EXPECT_EQ(order, "aabacaa");  // the sequence NGINX documents for weights 5, 1, 1
  for (int window = 0; window < 10; ++window) {
    std::map<uint32_t, int> counts;
    for (int i = 0; i < 7; ++i) ++counts[c.pick()];
    EXPECT_EQ(counts[0], 5);
    EXPECT_EQ(counts[1], 1);
    EXPECT_EQ(counts[2], 1);
  }
}

TEST(Cluster, EqualWeightsRotateAndWeightZeroGetsNothing) {
  Pools p(3);
  Cluster plain = p.cluster(Balancing::RoundRobin, {1, 1, 1});
  EXPECT_EQ(plain.pick(), 0u);
  EXPECT_EQ(plain.pick(), 1u);
  EXPECT_EQ(plain.pick(), 2u);
  EXPECT_EQ(plain.pick(), 0u);
  for (Balancing b : {Balancing::RoundRobin, Balancing::LeastRequest, Balancing::Random}) {
    Cluster c = p.cluster(b, {2, 0, 1});
    std::mt19937_64 rng(7);
    for (int i = 0; i < 300; ++i) EXPECT_NE(c.pick(rng()), 1u) << static_cast<int>(b);
  }
}

TEST(Cluster, PowerOfTwoChoicesAvoidsTheBusiestEndpoint) {
  Pools p(4);
  p.pools[0].active_requests = 50;  // busy
  Cluster c = p.cluster(Balancing::LeastRequest, {1, 1, 1, 1});
  std::mt19937_64 rng(1);
  std::map<uint32_t, int> counts;
  for (int i = 0; i < 4000; ++i) ++counts[c.pick(rng())];
  EXPECT_EQ(counts[0], 0);  // it always loses a comparison, and is never drawn twice
  for (uint32_t e = 1; e < 4; ++e) EXPECT_GT(counts[e], 1000) << e;
  // Two endpoints: always the less loaded one.
  Pools two(2);
  two.pools[1].active_requests = 1;
  Cluster pair = two.cluster(Balancing::LeastRequest, {1, 1});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(pair.pick(rng()), 0u);
}

TEST(Cluster, WeightedRandomFollowsTheWeights) {
  Pools p(2);
  Cluster c = p.cluster(Balancing::Random, {1, 3});
  std::mt19937_64 rng(3);
  int heavy = 0;
  for (int i = 0; i < 40000; ++i) heavy += c.pick(rng()) == 1 ? 1 : 0;
  EXPECT_NEAR(heavy / 40000.0, 0.75, 0.02);
}

std::vector<std::string> names(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back("10.0.0." + std::to_string(i + 1) + ":8080");
  return out;
}

TEST(Maglev, SameKeySameEndpointAndAnEvenSpread) {
  const auto five = names(5);
  MaglevTable a(five, std::vector<uint32_t>(5, 1));
  MaglevTable b(five, std::vector<uint32_t>(5, 1));  // another worker, process or gateway
  std::map<uint32_t, int> counts;
  for (int k = 0; k < 1000; ++k) {
    uint64_t h = hashKey("user-" + std::to_string(k));
    EXPECT_EQ(a.lookup(h), b.lookup(h));
    ++counts[a.lookup(h)];
  }
  ASSERT_EQ(counts.size(), 5u);
  for (const auto& [endpoint, n] : counts) EXPECT_NEAR(n, 200, 60) << endpoint;
}

TEST(Maglev, RemovingOneOfFiveMovesAboutAFifth) {
  const auto five = names(5);
  std::vector<std::string> four(five.begin(), five.end());
  four.erase(four.begin() + 2);
  MaglevTable before(five, std::vector<uint32_t>(5, 1));
  MaglevTable after(four, std::vector<uint32_t>(4, 1));
  int moved = 0;
  int kept_endpoint = 0;
  for (int k = 0; k < 1000; ++k) {
    uint64_t h = hashKey("key-" + std::to_string(k));
    const std::string& was = five[before.lookup(h)];
    const std::string& now = four[after.lookup(h)];
    if (was == five[2]) continue;  // its endpoint went: it must move
    ++kept_endpoint;
    if (was != now) ++moved;
  }
  // Of all 1000 keys, those that move: the removed endpoint's fifth plus a few more.
  EXPECT_LE(moved + (1000 - kept_endpoint), 250);
  EXPECT_LE(moved, kept_endpoint / 20);  // Maglev's small extra disruption
}

TEST(Maglev, SlotsFollowTheWeights) {
  const auto two = names(2);
  MaglevTable t(two, std::vector<uint32_t>{1, 3});
  int heavy = 0;
  for (int k = 0; k < 20000; ++k) heavy += t.lookup(hashKey(std::to_string(k))) == 1 ? 1 : 0;
  EXPECT_NEAR(heavy / 20000.0, 0.75, 0.03);
  MaglevTable zero(two, std::vector<uint32_t>{0, 2});
  for (int k = 0; k < 1000; ++k) EXPECT_EQ(zero.lookup(hashKey(std::to_string(k))), 1u);
}

TEST(Cluster, ConsistentHashUsesTheTable) {
  Pools p(3);
  const auto three = names(3);
  MaglevTable table(three, std::vector<uint32_t>{1, 1, 1});
  Cluster c = p.cluster(Balancing::ConsistentHash, {1, 1, 1}, &table);
  for (int k = 0; k < 100; ++k) {
    uint64_t h = hashKey(std::to_string(k));
    EXPECT_EQ(c.pick(k, h), table.lookup(h));
    EXPECT_EQ(c.pick(k + 1, h), table.lookup(h));
  }
}

}  // namespace
}  // namespace portico::upstream
