#pragma once
// The counters of `store: local` limits, shared by every worker of the process so a limit is
// exact however many workers there are, in lock stripes (stripes.hpp). The store outlives
// config snapshots: a reload that keeps a limit unchanged keeps its counters (the key includes
// the limit's identity). Memory is bounded by `max_keys`; idle counters are forgotten by sweep().

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
  using Map = Stripes<Entry>;
  using Stripe = Map::Stripe;

  // Room for one more entry in a full stripe: the idle ones go first, then the one that would
  // be idle soonest among a few.
  void makeRoom(Stripe& stripe, int64_t now_ns);

  Map stripes_;
  std::atomic<uint64_t> evictions_{0};
  std::mutex concurrency_mutex_;
  std::unordered_map<std::string, std::unique_ptr<std::atomic<int64_t>>> concurrency_;
};

}  // namespace portico::ratelimit
