#pragma once
// A worker's view of one upstream under one snapshot: its endpoints (this worker's connection
// pools, which outlive snapshots) and the choice of the endpoint that takes the next request.
// Health, outlier and circuit-breaker state join it with the resilience work (#14).

#include <cstdint>
#include <vector>

#include "config/model.hpp"

namespace portico::upstream {

struct EndpointPool;
class MaglevTable;

class Cluster {
 public:
  // `first_turn` staggers round robin between workers, so that they do not all start on the
  // first endpoint. `maglev`: the snapshot's table, for consistent_hash.
  Cluster(config::Upstream::Balancing balancing, uint32_t first_turn,
          const MaglevTable* maglev = nullptr)
      : balancing_(balancing), next_turn_(first_turn), maglev_(maglev) {}

  void addEndpoint(EndpointPool* pool, uint32_t weight = 1);
  size_t size() const { return endpoints_.size(); }
  EndpointPool& endpoint(uint32_t index) const { return *endpoints_[index]; }

  // The endpoint for the next request. `random`: a fresh random number (least_request, random);
  // `key_hash`: the request's hash_on key (consistent_hash).
  uint32_t pick(uint64_t random = 0, uint64_t key_hash = 0);

 private:
  uint32_t pickRoundRobin();
  uint32_t pickLeastRequest(uint64_t random);
  uint32_t pickRandom(uint64_t random) const;

  config::Upstream::Balancing balancing_;
  uint32_t next_turn_;
  const MaglevTable* maglev_;
  std::vector<EndpointPool*> endpoints_;  // in the config's order
  std::vector<uint32_t> weights_;
  std::vector<uint32_t> eligible_;     // endpoints with a weight above 0
  std::vector<uint64_t> cumulative_;   // running sum of the weights (random)
  std::vector<int64_t> current_;       // smooth weighted round robin's state
  bool weighted_ = false;              // some weights differ
};

}  // namespace portico::upstream
