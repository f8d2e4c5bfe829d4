#pragma once
// The counters of batched limits (`store: redis` with `sync`), shared by the workers of this
// process like the local store's, and what this gateway knows of the fleet's counts.
//
// Requests never wait for Redis: each is decided here, against a lease. Every `sync` interval
// the sync thread (redis_sync.hpp) takes a batch of the keys that saw traffic, adds what this
// gateway admitted to the fleet's counts in Redis, and gets back a lease: a share of what is
// left of the window that no other live gateway holds, reserved for this gateway until its next
// sync. A key idle for an interval shrinks its lease to a standby one (a tenth of this gateway's
// share of the limit, or the trust share below if larger), so the rest goes back to the fleet
// and the next requests still have one.
// Leases never add up to more than the limit, so the fleet overshoots only through requests a
// gateway admits on trust before its first sync of a key in a window:
// `ceil(limit * sync / window / live gateways)` each, about `limit * sync / window + live
// gateways` over the fleet per window.
// When Redis cannot be reached, each gateway admits its own `ceil(limit / live gateways)` per
// window, and reports what it admitted when Redis is back.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ratelimit/algorithms.hpp"
#include "ratelimit/stripes.hpp"

namespace portico::ratelimit {

class SyncStore {
 public:
  explicit SyncStore(size_t max_keys = kDefaultMaxKeys);
  SyncStore(const SyncStore&) = delete;
  SyncStore& operator=(const SyncStore&) = delete;

  static constexpr size_t kDefaultMaxKeys = 1 << 20;

  // The request path (workers). `params` are a fixed or sliding window's.
  Decision take(std::string_view key, const Params& params, int64_t sync_ns, int64_t now_ns);
  void giveBack(std::string_view key);

  // One key's part of a batch: what to tell Redis, and where its answer goes.
  struct Item {
    enum class Op : char { Update = 'u', Idle = 'r', Add = 'a' };
    Op op = Op::Update;
    std::string key;
    int64_t window_start_ns = 0;  // the window the item counts in
    int64_t delta = 0;            // admissions to add to the fleet's count
    uint32_t weight_ppm = 0;      // sliding: how much of the previous window still counts
    int64_t standby = 0;          // Idle: the largest lease to keep
    Params params;
    uint64_t batch = 0;
  };
  // What Redis answered for an Update.
  struct Answer {
    int64_t fleet = 0;       // the window's count, this delta included
    int64_t fleet_prev = 0;  // the previous window's (sliding)
    int64_t room = 0;        // limit - counts - other live gateways' leases
    int64_t lease = 0;
  };

  // The sync thread. Fills `out` with the keys due at `now_ns` and marks them in flight.
  void takeBatch(int64_t now_ns, std::vector<Item>& out);
  void applyAnswer(const Item& item, const Answer& answer);
  // Redis did not answer: the item's admissions are sent again with the next batch.
  void applyFailure(const Item& item);

  // What the last sync said of the fleet, and whether Redis answers at all.
  void setFleetSize(int64_t gateways) { fleet_size_.store(gateways < 1 ? 1 : gateways); }
  int64_t fleetSize() const { return fleet_size_.load(std::memory_order_relaxed); }
  void setRedisDown(bool down) { redis_down_.store(down, std::memory_order_relaxed); }
  // After an outage, until the other gateways have reported what they admitted meanwhile, a
  // lease Redis gives cannot know of it: until `until_ns`, each gateway also stays within its
  // outage share of each window.
  // The share is the one of the outage, with the fleet size known then (gateways that have not
  // synced again yet look gone from the members set).
  void capToOwnShareUntil(int64_t until_ns) {
    outage_fleet_size_.store(fleetSize(), std::memory_order_relaxed);
    own_share_until_.store(until_ns, std::memory_order_relaxed);
  }
  bool redisDown() const { return redis_down_.load(std::memory_order_relaxed); }

  // Forgets keys whose windows are over. Run from a control thread.
  void sweep(int64_t now_ns);
  // Forgets every key (the counts now live in another Redis).
  void clear();
  size_t size() const;

 private:
  struct Entry {
    Params params;
    int64_t sync_ns = 0;
    // This gateway's own admissions: a = window start, b = its count, c = the previous one's.
    CounterState own;
    // What the last sync told of the current window (when `known`).
    int64_t fleet = 0;
    int64_t fleet_prev = 0;
    int64_t room = 0;
    int64_t lease = 0;
    int64_t charged = 0;      // admissions charged to the lease, or to the trust allowance
    int64_t unsynced = 0;     // admissions not yet sent
    int64_t sending = 0;      // admissions in the batch in flight
    int64_t since_taken = 0;  // admissions since that batch was taken
    int64_t prev_unsynced = 0;  // sliding: the previous window's, not yet sent
    int64_t last_sync_ns = 0;
    uint64_t batch = 0;       // the batch in flight with this key, 0: none
    bool known = false;       // a sync answered for this window
    bool held = false;        // Redis holds a lease (maybe 0) of ours: renew or shrink it
    bool active = false;      // admitted or refused something since the last batch
    bool queued = false;      // in the stripe's queue
  };
  struct SyncQueue {
    std::vector<std::string> queue;  // keys the sync thread looks at next
  };
  using Map = Stripes<Entry, SyncQueue>;
  using Stripe = Map::Stripe;

  // Moves the entry on to the window holding `now_ns`, leaving the lease of the old one.
  static void roll(Entry& e, int64_t now_ns);
  int64_t trustShare(const Entry& e) const;
  int64_t standbyShare(const Entry& e) const;
  // This gateway's outage share: ceil(limit / gateways) per window.
  static Params ownShare(const Entry& e, int64_t gateways);
  Decision fleetView(const Entry& e, int64_t now_ns) const;
  void enqueue(Stripe& stripe, Entry& e, std::string_view key);
  void makeRoom(Stripe& stripe, int64_t now_ns);

  Map stripes_;
  std::atomic<int64_t> fleet_size_{1};
  std::atomic<bool> redis_down_{false};
  std::atomic<int64_t> own_share_until_{0};
  std::atomic<int64_t> outage_fleet_size_{1};
  std::atomic<uint64_t> next_batch_{1};
};

}  // namespace portico::ratelimit
