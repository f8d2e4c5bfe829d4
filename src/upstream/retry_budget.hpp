#pragma once
// How many retries an upstream may take, for the whole process: over the last 10 s, at most
// `budget` per request plus a floor (Finagle's retry budget). A failing upstream then sees at
// most (1 + budget) times the requests, never a retry storm.

#include <cstdint>

#include "upstream/sliding_counts.hpp"

namespace portico::upstream {

class RetryBudget {
 public:
  static constexpr uint64_t kWindowMs = 10'000;
  static constexpr uint64_t kFloor = 10;  // retries per window whatever the traffic

  void deposit(uint64_t now_ms) { counts_.add(kRequests, now_ms); }

  // True, and the retry is counted, when the budget allows one more.
  bool withdraw(double budget, uint64_t now_ms) {
    const auto counts = counts_.sum(now_ms);
    if (static_cast<double>(counts[kRetries]) >=
        budget * static_cast<double>(counts[kRequests]) + static_cast<double>(kFloor)) {
      return false;
    }
    counts_.add(kRetries, now_ms);
    return true;
  }

 private:
  static constexpr size_t kRequests = 0;
  static constexpr size_t kRetries = 1;
  SlidingCounts<2> counts_{kWindowMs};
};

}  // namespace portico::upstream
