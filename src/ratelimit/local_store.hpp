#pragma once
// The counters of `store: local` limits, shared by every worker of the process so a limit is
// exact however many workers there are, in lock stripes (stripes.hpp). The store outlives
// config snapshots: a reload that keeps a limit unchanged keeps its counters (the key includes
// the limit's identity). Memory is bounded by `max_keys`; idle counters are forgotten by sweep().

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ratelimit/algorithms.hpp"
#include "ratelimit/stripes.hpp"

namespace portico::ratelimit {

class LocalStore {
 public:
  // `sample`: how many entries a full stripe looks at before it scans them all (tests make it
  // small to reach the scan).
  explicit LocalStore(size_t max_keys = kDefaultMaxKeys, size_t sample = kMaxSample);
  LocalStore(const LocalStore&) = delete;
  LocalStore& operator=(const LocalStore&) = delete;

  static constexpr size_t kDefaultMaxKeys = 1 << 20;
  static constexpr size_t kMaxSample = 64;

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
  // What a full stripe needs to make room without scanning all of it (review M6): a time
  // before which no entry is idle (lowered by every update, made exact by a scan), and a clock
  // hand over the map's buckets for sampling.
  struct Eviction {
    int64_t no_idle_before = INT64_MAX;
    size_t hand = 0;
  };
  using Map = Stripes<Entry, Eviction>;
  using Stripe = Map::Stripe;

  // Room for one more entry in a full stripe. An idle entry always goes before a live one: when
  // one may be idle, a sample at the hand is tried, then a full scan. Only when none can be is
  // a live one evicted, the one that would be idle soonest in a sample.
  void makeRoom(Stripe& stripe, int64_t now_ns);
  // Erases the idle entries among sample_ at the hand; false when there were none. Else, in
  // `live`, the one that would be idle soonest.
  bool eraseIdleAtHand(Stripe& stripe, int64_t now_ns, Map::Entries::iterator& live);
  // Erases every idle entry and makes no_idle_before exact; false when there were none.
  static bool eraseAllIdle(Stripe& stripe, int64_t now_ns);
  static void noteIdleFrom(Stripe& stripe, const Entry& entry) {
    stripe.no_idle_before = std::min(stripe.no_idle_before, entry.idle_from);
  }

  Map stripes_;
  size_t sample_;
  std::atomic<uint64_t> evictions_{0};
  std::mutex concurrency_mutex_;
  std::unordered_map<std::string, std::unique_ptr<std::atomic<int64_t>>> concurrency_;
};

}  // namespace portico::ratelimit
