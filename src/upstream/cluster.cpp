#include "upstream/cluster.hpp"

#include <algorithm>

#include "upstream/connection.hpp"
#include "upstream/maglev.hpp"
#include "upstream/upstream_health.hpp"

namespace portico::upstream {

void Cluster::addEndpoint(EndpointPool* pool, uint32_t weight) {
  if (weight > 0) eligible_.push_back(static_cast<uint32_t>(endpoints_.size()));
  weighted_ = weighted_ || (!weights_.empty() && weight != weights_.front());
  endpoints_.push_back(pool);
  weights_.push_back(weight);
  cumulative_.push_back((cumulative_.empty() ? 0 : cumulative_.back()) + weight);
  current_.push_back(0);
}

uint32_t Cluster::pick(uint64_t random, uint64_t key_hash, uint32_t avoid, uint64_t now_ms) {
  if (endpoints_.empty()) return kNone;  // a dns: name that resolved to nothing yet
  const uint32_t choice = pickByPolicy(random, key_hash);
  if (health_ == nullptr && avoid == kNone) return choice;
  if (choice != avoid && available(choice, now_ms)) return choice;
  // The policy's choice is out: the next available endpoint after it, in the config's order.
  const auto n = static_cast<uint32_t>(endpoints_.size());
  for (uint32_t step = 1; step < n; ++step) {
    const uint32_t next = (choice + step) % n;
    if (next != avoid && weights_[next] > 0 && available(next, now_ms)) return next;
  }
  if (avoid != kNone && available(avoid, now_ms)) return avoid;  // better it than nothing
  return kNone;
}

bool Cluster::available(uint32_t index, uint64_t now_ms) const {
  return health_ == nullptr || health_->endpoint(index).available(now_ms);
}

uint32_t Cluster::pickByPolicy(uint64_t random, uint64_t key_hash) {
  if (endpoints_.size() <= 1) return 0;
  switch (balancing_) {
    case config::Upstream::Balancing::RoundRobin: return pickRoundRobin();
    case config::Upstream::Balancing::LeastRequest: return pickLeastRequest(random);
    case config::Upstream::Balancing::Random: return pickRandom(random);
    case config::Upstream::Balancing::ConsistentHash:
      return maglev_ != nullptr && !maglev_->empty() ? maglev_->lookup(key_hash)
                                                     : pickRoundRobin();
  }
  return 0;
}

// Smooth weighted round robin (NGINX's): each endpoint gains its weight every turn, the one with
// the most takes the request and pays back the total. Weights 3 and 1 give a, a, b, a: every
// window of (sum of weights) requests holds each endpoint exactly its weight's times.
uint32_t Cluster::pickRoundRobin() {
  if (!weighted_) return eligible_[next_turn_++ % eligible_.size()];
  int64_t total = 0;
  uint32_t best = eligible_.front();
  for (uint32_t i : eligible_) {
    current_[i] += weights_[i];
    total += weights_[i];
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total;
  return best;
}

// Power of two choices: two endpoints drawn at random, the one with fewer requests in flight for
// its weight takes the request (Mitzenmacher; Envoy's least_request).
uint32_t Cluster::pickLeastRequest(uint64_t random) {
  const auto n = static_cast<uint32_t>(eligible_.size());
  if (n == 1) return eligible_.front();
  const uint32_t a = eligible_[random % n];
  const uint32_t b = eligible_[(random % n + 1 + (random >> 32) % (n - 1)) % n];
  const uint64_t load_a = static_cast<uint64_t>(endpoints_[a]->active_requests) * weights_[b];
  const uint64_t load_b = static_cast<uint64_t>(endpoints_[b]->active_requests) * weights_[a];
  return load_b < load_a ? b : a;
}

uint32_t Cluster::pickRandom(uint64_t random) const {
  const uint64_t point = random % cumulative_.back();
  auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), point);
  return static_cast<uint32_t>(it - cumulative_.begin());
}

}  // namespace portico::upstream
