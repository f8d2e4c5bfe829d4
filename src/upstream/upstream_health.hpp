#pragma once
// What the whole process knows about one upstream's health: each endpoint's active-check verdict
// and outlier ejection, the circuit breaker and the retry budget. Shared by every worker (atomics,
// no lock on the request path) and carried across reloads by HealthRegistry, by upstream name
// and endpoint key. Settings are not kept here: each call takes them from the snapshot in force.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "upstream/circuit_breaker.hpp"
#include "upstream/retry_budget.hpp"

namespace portico::upstream {

struct EndpointHealth {
  // Set by the health checker (control thread), read by workers.
  std::atomic<bool> check_failed{false};
  // Outlier ejection: workers count, the one that ejects takes UpstreamHealth's lock.
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint64_t> ejected_until_ms{0};

  // Health checker only.
  uint32_t check_passes = 0;
  uint32_t check_failures = 0;
  std::string check_reason;  // why the last check failed

  // Under UpstreamHealth::ejection_mutex.
  uint32_t ejections = 0;  // in a row: the n-th lasts n × eject_for
  uint64_t ejected_at_ms = 0;
  uint64_t ejection_ms = 0;    // how long the last one lasted
  uint32_t ejected_after = 0;  // the failures that caused it

  bool ejected(uint64_t now_ms) const {
    return ejected_until_ms.load(std::memory_order_relaxed) > now_ms;
  }
  bool available(uint64_t now_ms) const {
    return !check_failed.load(std::memory_order_relaxed) && !ejected(now_ms);
  }
};

// The shared parts, kept across reloads.
struct UpstreamHealthState {
  CircuitBreakerState breaker;
  RetryBudget retry_budget;
  std::mutex ejection_mutex;  // ejection decisions only: a few per minute at most
  std::map<std::string, std::shared_ptr<EndpointHealth>> endpoints;  // by endpoint key
};

// One snapshot's view: its endpoints, in its order, over the shared state.
class UpstreamHealth {
 public:
  UpstreamHealth(std::shared_ptr<UpstreamHealthState> state,
                 const std::vector<std::string>& endpoint_keys);

  EndpointHealth& endpoint(size_t index) const { return *endpoints_[index]; }
  const std::shared_ptr<EndpointHealth>& sharedEndpoint(size_t index) const {
    return endpoints_[index];
  }
  size_t size() const { return endpoints_.size(); }
  CircuitBreakerState& breaker() const { return state_->breaker; }
  RetryBudget& retryBudget() const { return state_->retry_budget; }

  // Why endpoint `index` is ejected, for the admin API.
  std::string ejectionReason(size_t index) const;

  // A request's outcome at endpoint `index`, for outlier ejection.
  void recordOutcome(const config::OutlierDetection& settings, size_t index, bool failed,
                     uint64_t now_ms) const;

 private:
  void tryEject(const config::OutlierDetection& settings, size_t index, uint64_t now_ms) const;

  std::shared_ptr<UpstreamHealthState> state_;
  std::vector<std::shared_ptr<EndpointHealth>> endpoints_;
};

// Keeps each upstream's health state from one snapshot to the next (control thread only).
class HealthRegistry {
 public:
  std::shared_ptr<UpstreamHealth> adopt(const std::string& upstream,
                                        const std::vector<std::string>& endpoint_keys);

 private:
  std::map<std::string, std::shared_ptr<UpstreamHealthState>> upstreams_;
};

}  // namespace portico::upstream
