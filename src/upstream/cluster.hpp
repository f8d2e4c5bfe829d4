#pragma once
// A worker's view of one upstream under one snapshot: its endpoints (this worker's connection
// pools, which outlive snapshots) and the choice of the endpoint that takes the next request.
// Health, outlier and circuit-breaker state join it with the resilience work (#14).

#include <cstdint>
#include <vector>

#include "config/model.hpp"

namespace portico::upstream {

struct EndpointPool;

class Cluster {
 public:
  // `first_turn` staggers round robin between workers, so that they do not all start on the
  // first endpoint.
  Cluster(config::Upstream::Balancing balancing, uint32_t first_turn)
      : balancing_(balancing), next_turn_(first_turn) {}

  void addEndpoint(EndpointPool* pool) { endpoints_.push_back(pool); }
  size_t size() const { return endpoints_.size(); }
  EndpointPool& endpoint(uint32_t index) const { return *endpoints_[index]; }

  // The endpoint for the next request: the next in turn, or with least_request the one with
  // the fewest requests in flight on this worker (the next in turn among equals).
  uint32_t pick();

 private:
  config::Upstream::Balancing balancing_;
  uint32_t next_turn_;
  std::vector<EndpointPool*> endpoints_;  // in the config's order
};

}  // namespace portico::upstream
