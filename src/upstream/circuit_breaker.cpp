#include "upstream/circuit_breaker.hpp"

namespace portico::upstream {
namespace {
constexpr size_t kRequests = 0;
constexpr size_t kFailures = 1;
}  // namespace

CircuitBreakerState::Admission CircuitBreakerState::admit(const config::CircuitBreaker& settings,
                                                          uint64_t now_ms) {
  State state = state_.load(std::memory_order_acquire);
  if (state == State::Closed) return Admission::Passed;
  if (state == State::Open) {
    if (now_ms < open_until_ms_.load(std::memory_order_relaxed)) return Admission::Refused;
    // The probe counts were zeroed when it opened; one worker moves it on, the rest follow.
    if (!state_.compare_exchange_strong(state, State::HalfOpen, std::memory_order_acq_rel) &&
        state == State::Closed) {
      return Admission::Passed;
    }
  }
  uint32_t sent = probes_sent_.load(std::memory_order_relaxed);
  do {
    if (sent >= settings.half_open_requests) return Admission::Refused;
  } while (!probes_sent_.compare_exchange_weak(sent, sent + 1, std::memory_order_relaxed));
  return state_.load(std::memory_order_acquire) == State::HalfOpen ? Admission::Probe
                                                                   : Admission::Refused;
}

void CircuitBreakerState::record(const config::CircuitBreaker& settings, bool failed, bool probe,
                                 uint64_t now_ms) {
  if (probe) {
    if (state_.load(std::memory_order_acquire) != State::HalfOpen) return;
    if (failed) {
      open(settings, State::HalfOpen, now_ms);
    } else if (probes_passed_.fetch_add(1, std::memory_order_relaxed) + 1 >=
               settings.half_open_requests) {
      closed_at_ms_.store(now_ms, std::memory_order_relaxed);
      State expected = State::HalfOpen;
      state_.compare_exchange_strong(expected, State::Closed, std::memory_order_acq_rel);
    }
    return;
  }
  // An outcome of a request admitted before the circuit opened says nothing about now.
  if (state_.load(std::memory_order_relaxed) != State::Closed) return;
  window_.setWindow(static_cast<uint64_t>(settings.window.count()));
  window_.add(kRequests, now_ms);
  if (!failed) return;
  window_.add(kFailures, now_ms);
  const auto counts = window_.sum(now_ms, closed_at_ms_.load(std::memory_order_relaxed));
  if (counts[kRequests] >= settings.min_requests &&
      static_cast<double>(counts[kFailures]) >=
          settings.failure_rate * static_cast<double>(counts[kRequests])) {
    open(settings, State::Closed, now_ms);
  }
}

void CircuitBreakerState::abandonProbe() {
  uint32_t sent = probes_sent_.load(std::memory_order_relaxed);
  while (sent > 0 &&
         !probes_sent_.compare_exchange_weak(sent, sent - 1, std::memory_order_relaxed)) {
  }
}

void CircuitBreakerState::open(const config::CircuitBreaker& settings, State from,
                               uint64_t now_ms) {
  open_until_ms_.store(now_ms + static_cast<uint64_t>(settings.open_for.count()),
                       std::memory_order_relaxed);
  probes_sent_.store(0, std::memory_order_relaxed);
  probes_passed_.store(0, std::memory_order_relaxed);
  if (state_.compare_exchange_strong(from, State::Open, std::memory_order_acq_rel)) {
    opened_.fetch_add(1, std::memory_order_relaxed);
  }
}

CircuitBreakerState::Window CircuitBreakerState::window(uint64_t now_ms) const {
  const auto counts = window_.sum(now_ms, closed_at_ms_.load(std::memory_order_relaxed));
  return {counts[kRequests], counts[kFailures]};
}

}  // namespace portico::upstream
