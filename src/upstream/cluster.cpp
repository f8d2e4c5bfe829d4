#include "upstream/cluster.hpp"

#include "upstream/connection.hpp"

namespace portico::upstream {

uint32_t Cluster::pick() {
  const auto n = static_cast<uint32_t>(endpoints_.size());
  uint32_t index = next_turn_++ % n;
  if (balancing_ == config::Upstream::Balancing::LeastRequest && n > 1) {
    uint32_t best = index;
    for (uint32_t i = 1; i < n; ++i) {
      const uint32_t candidate = (index + i) % n;
      if (endpoints_[candidate]->active_requests < endpoints_[best]->active_requests) {
        best = candidate;
      }
    }
    index = best;
  }
  return index;
}

}  // namespace portico::upstream
