#include "upstream/cluster.hpp"

#include <gtest/gtest.h>

#include <array>

#include "upstream/connection.hpp"

namespace portico::upstream {
namespace {

using Balancing = config::Upstream::Balancing;

TEST(Cluster, RoundRobinTakesEachEndpointInTurnFromTheFirstTurn) {
  std::array<EndpointPool, 3> pools;
  Cluster cluster(Balancing::RoundRobin, 1);
  for (auto& pool : pools) cluster.addEndpoint(&pool);
  std::vector<uint32_t> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(cluster.pick());
  EXPECT_EQ(picks, (std::vector<uint32_t>{1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(&cluster.endpoint(2), &pools[2]);
}

TEST(Cluster, LeastRequestTakesTheLeastBusyAndRotatesAmongEquals) {
  std::array<EndpointPool, 3> pools;
  Cluster cluster(Balancing::LeastRequest, 0);
  for (auto& pool : pools) cluster.addEndpoint(&pool);
  pools[0].active_requests = 5;
  pools[1].active_requests = 1;
  pools[2].active_requests = 3;
  EXPECT_EQ(cluster.pick(), 1u);
  EXPECT_EQ(cluster.pick(), 1u);
  pools[1].active_requests = 3;  // 1 and 2 are equal: the turn decides
  EXPECT_EQ(cluster.pick(), 2u);  // turn 2
  EXPECT_EQ(cluster.pick(), 1u);  // turn 3 is 0 (busy): the next least busy from there
}

TEST(Cluster, OneEndpointIsAlwaysPicked) {
  EndpointPool pool;
  Cluster cluster(Balancing::LeastRequest, 7);
  cluster.addEndpoint(&pool);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(cluster.pick(), 0u);
}

}  // namespace
}  // namespace portico::upstream
