#pragma once
// A worker's view of one upstream under one snapshot: its endpoints (this worker's connection
// pools, which outlive snapshots) and the choice of the endpoint that takes the next request.
// Endpoints that failed their health checks or were ejected are passed over.

#include <cstdint>
#include <vector>

#include "config/model.hpp"

namespace portico::upstream {

struct EndpointPool;
class MaglevTable;
class UpstreamHealth;

class Cluster {
 public:
  // `first_turn` staggers round robin between workers, so that they do not all start on the
  // first endpoint. `maglev`: the snapshot's table, for consistent_hash.
  // `health`: set when endpoints can leave the rotation (health checks, outlier ejection).
  Cluster(config::Upstream::Balancing balancing, uint32_t first_turn,
          const MaglevTable* maglev = nullptr, const UpstreamHealth* health = nullptr)
      : balancing_(balancing), next_turn_(first_turn), maglev_(maglev), health_(health) {}

  static constexpr uint32_t kNone = UINT32_MAX;

  void addEndpoint(EndpointPool* pool, uint32_t weight = 1);
  size_t size() const { return endpoints_.size(); }
  EndpointPool& endpoint(uint32_t index) const { return *endpoints_[index]; }

  // The endpoint for the next request, or kNone when every endpoint is out of the rotation.
  // `random`: a fresh random number (least_request, random); `key_hash`: the request's hash_on
  // key (consistent_hash); `avoid`: an endpoint that just failed this request (a retry), taken
  // only when no other is available.
  uint32_t pick(uint64_t random = 0, uint64_t key_hash = 0, uint32_t avoid = kNone,
                uint64_t now_ms = 0);

 private:
  uint32_t pickByPolicy(uint64_t random, uint64_t key_hash);
  bool available(uint32_t index, uint64_t now_ms) const;
  uint32_t pickRoundRobin();
  uint32_t pickLeastRequest(uint64_t random);
  uint32_t pickRandom(uint64_t random) const;

  config::Upstream::Balancing balancing_;
  uint32_t next_turn_;
  const MaglevTable* maglev_;
  const UpstreamHealth* health_;
  std::vector<EndpointPool*> endpoints_;  // in the config's order
  std::vector<uint32_t> weights_;
  std::vector<uint32_t> eligible_;     // endpoints with a weight above 0
  std::vector<uint64_t> cumulative_;   // running sum of the weights (random)
  std::vector<int64_t> current_;       // smooth weighted round robin's state
  bool weighted_ = false;              // some weights differ
};

}  // namespace portico::upstream
