#pragma once
// One upstream's circuit breaker, shared by every worker of the process (docs/resilience.md).
// Closed: requests pass and their outcomes are counted over a sliding window; once `min_requests`
// completed and the failure rate reaches `failure_rate`, it opens. Open: nothing passes until
// `open_for` has passed. Half-open: exactly `half_open_requests` probes pass; all of them
// succeeding closes it with an empty window, the first failure opens it again.
//
// The state outlives snapshots (it is kept by upstream name across reloads); the settings come
// from the snapshot in force at each call.

#include <atomic>
#include <cstdint>

#include "config/model.hpp"
#include "upstream/sliding_counts.hpp"

namespace portico::upstream {

class CircuitBreakerState {
 public:
  enum class State : uint8_t { Closed = 0, HalfOpen = 1, Open = 2 };  // the metric's values
  enum class Admission : uint8_t { Refused, Passed, Probe };

  Admission admit(const config::CircuitBreaker& settings, uint64_t now_ms);
  // A request that was admitted completed; `probe` as admit() said.
  void record(const config::CircuitBreaker& settings, bool failed, bool probe, uint64_t now_ms);
  // An admitted probe that ended without an outcome (the client left): another may go.
  void abandonProbe();

  State state() const { return state_.load(std::memory_order_relaxed); }
  struct Window {
    uint64_t requests = 0;
    uint64_t failures = 0;
  };
  Window window(uint64_t now_ms) const;
  uint64_t opened() const { return opened_.load(std::memory_order_relaxed); }

 private:
  void open(const config::CircuitBreaker& settings, State from, uint64_t now_ms);

  std::atomic<State> state_{State::Closed};
  std::atomic<uint64_t> open_until_ms_{0};
  std::atomic<uint64_t> closed_at_ms_{0};  // counts before it are not this closed period's
  std::atomic<uint32_t> probes_sent_{0};
  std::atomic<uint32_t> probes_passed_{0};
  std::atomic<uint64_t> opened_{0};  // times it opened, for the admin API
  SlidingCounts<2> window_;          // [0] completed requests, [1] failures
};

}  // namespace portico::upstream
