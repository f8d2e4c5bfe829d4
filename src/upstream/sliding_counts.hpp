#pragma once
// Event counts over a sliding window, written by every worker without a lock. The window is cut
// into kSlices time slices; each counter word holds its slice number in the high 32 bits and the
// count in the low 32, so a writer that finds an old slice starts the count afresh with one
// compare-and-swap, and a reader skips slices that left the window. Exact under concurrency.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace portico::upstream {

template <size_t kCounters>
class SlidingCounts {
 public:
  static constexpr uint64_t kSlices = 10;

  explicit SlidingCounts(uint64_t window_ms = 10'000) { setWindow(window_ms); }

  // Takes effect for counts from now on; the control thread sets it before workers count.
  void setWindow(uint64_t window_ms) {
    const uint64_t slice_ms = std::max<uint64_t>(window_ms / kSlices, 1);
    // Read first: a store on every call would bounce the line between the workers.
    if (slice_ms_.load(std::memory_order_relaxed) != slice_ms) {
      slice_ms_.store(slice_ms, std::memory_order_relaxed);
    }
  }

  void add(size_t counter, uint64_t now_ms) {
    const uint64_t slice = now_ms / slice_ms_.load(std::memory_order_relaxed);
    std::atomic<uint64_t>& word = slices_[slice % kSlices][counter];
    uint64_t seen = word.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t next = (seen >> 32) == (slice & 0xffffffff) ? seen + 1 : (slice << 32) | 1;
      if (word.compare_exchange_weak(seen, next, std::memory_order_relaxed)) return;
    }
  }

  // The counts of the window that ends now, leaving out slices before `since_ms`.
  std::array<uint64_t, kCounters> sum(uint64_t now_ms, uint64_t since_ms = 0) const {
    const uint64_t slice_ms = slice_ms_.load(std::memory_order_relaxed);
    const uint64_t current = now_ms / slice_ms;
    const uint64_t first = std::max(current >= kSlices - 1 ? current - (kSlices - 1) : 0,
                                    (since_ms + slice_ms - 1) / slice_ms);
    if (first > current) return {};
    const uint64_t newest_age = current - first;  // slices from `first` to now, minus one
    std::array<uint64_t, kCounters> total{};
    for (const auto& counters : slices_) {
      for (size_t c = 0; c < kCounters; ++c) {
        const uint64_t word = counters[c].load(std::memory_order_relaxed);
        // In 32 bits, so that a slice number that wrapped still compares.
        const uint32_t age = static_cast<uint32_t>(current) - static_cast<uint32_t>(word >> 32);
        if (age <= newest_age) total[c] += word & 0xffffffff;
      }
    }
    return total;
  }

 private:
  std::atomic<uint64_t> slice_ms_{1000};
  std::array<std::array<std::atomic<uint64_t>, kCounters>, kSlices> slices_{};
};

}  // namespace portico::upstream
