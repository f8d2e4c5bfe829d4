#pragma once
// The counters of `store: local` limits, shared by every worker of the process so a limit is
// exact however many workers there are. Keys spread over many stripes, each with its own lock
// held for a few dozen instructions, so workers meet on a lock only when they count the same
// stripe at the same moment — there is no global lock. The store outlives config snapshots:
// a reload that keeps a limit unchanged keeps its counters (the key includes the limit's
// identity). Memory is bounded by `max_keys`; idle counters are forgotten by sweep().

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ratelimit/algorithms.hpp"

namespace portico::ratelimit {

class LocalStore {
 public:
  explicit LocalStore(size_t max_keys = kDefaultMaxKeys);
  LocalStore(const LocalStore&) = delete;
  LocalStore& operator=(const LocalStore&) = delete;

  static constexpr size_t kDefaultMaxKeys = 1 << 20;

  Decision take(std::string_view key, const Params& params, int64_t now_ns,
                const Window* window = nullptr);
  void giveBack(std::string_view key, const Params& params);
  // Forgets counters that have gone back to their initial state. Run from a control thread.
  void sweep(int64_t now_ns);
  size_t size() const;
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

  // The in-flight counter of a route's concurrency_limit: stable for the process's life, so
  // requests that started under an older snapshot give back to the same counter.
  std::atomic<int64_t>* concurrencyCounter(const std::string& route);

 private:
  struct Entry {
    CounterState state;
    int64_t idle_from = 0;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  struct alignas(64) Stripe {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry, Hash, Equal> entries;
  };
  static constexpr size_t kStripes = 64;

  Stripe& stripeFor(std::string_view key);
  // Room for one more entry in a full stripe: the idle ones go first, then the one that would
  // be idle soonest among a few.
  void makeRoom(Stripe& stripe, int64_t now_ns);

  size_t max_per_stripe_;
  std::array<Stripe, kStripes> stripes_;
  std::atomic<uint64_t> evictions_{0};
  std::mutex concurrency_mutex_;
  std::unordered_map<std::string, std::unique_ptr<std::atomic<int64_t>>> concurrency_;
};

}  // namespace portico::ratelimit
