#pragma once
#include <ctime>
#include <cstdint>

namespace portico {

// Milliseconds on the monotonic clock. The coarse clock is a vDSO read without a syscall and
// its few-ms resolution is plenty for timeouts.
inline uint64_t monotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

// Microseconds on the precise monotonic clock, for durations in the access log.
inline uint64_t monotonicUs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// Nanoseconds since the Unix epoch: rate-limit windows are aligned to the wall clock, the same
// on every gateway and in Redis.
inline int64_t unixNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace portico
