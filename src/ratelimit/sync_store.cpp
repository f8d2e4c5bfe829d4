#include "ratelimit/sync_store.hpp"

#include <algorithm>

namespace portico::ratelimit {
namespace {

using Algorithm = config::RateLimit::Algorithm;

int64_t ceilDiv(__int128 a, __int128 b) { return static_cast<int64_t>((a + b - 1) / b); }

bool sliding(const Params& p) { return p.algorithm == Algorithm::SlidingWindow; }

// A window's entry matters until the next window ends (sliding), unless a sync is carrying it.
bool over(const auto& kv, int64_t now_ns) {
  const auto& e = kv.second;
  return now_ns >= e.own.a + 2 * e.params.window_ns && e.batch == 0 && !e.queued;
}

}  // namespace

SyncStore::SyncStore(size_t max_keys) : stripes_(max_keys) {}

void SyncStore::roll(Entry& e, int64_t now_ns) {
  const int64_t ended = e.own.a;
  if (!rollWindow(e.own, e.params, now_ns)) return;
  const bool next = ended == e.own.a - e.params.window_ns;
  // The window that ends: its count weighs on the next one (sliding), as last known.
  e.fleet_prev = next ? (e.known ? e.fleet : 0) + e.sending + e.unsynced : 0;
  e.prev_unsynced = next && sliding(e.params) ? e.unsynced : 0;
  e.fleet = e.room = e.lease = e.charged = 0;
  e.unsynced = e.sending = e.since_taken = 0;
  e.batch = 0;  // an answer still coming is for the old window
  e.known = e.held = e.active = false;
}

// What a gateway may admit of a key without a lease, before its first sync of the window. Over
// the fleet: the overshoot bound.
int64_t SyncStore::trustShare(const Entry& e) const {
  const Params& p = e.params;
  const int64_t share = ceilDiv(static_cast<__int128>(p.limit) * e.sync_ns,
                                static_cast<__int128>(p.window_ns) * fleetSize());
  return std::min<int64_t>(share, static_cast<int64_t>(p.limit));
}

// What an idle key keeps reserved: enough for a client's next few requests, little enough that
// idle gateways hold about a tenth of the limit between them (more only where the trust share
// is larger).
int64_t SyncStore::standbyShare(const Entry& e) const {
  return std::max(trustShare(e), ceilDiv(e.params.limit, 10 * fleetSize()));
}

Params SyncStore::ownShare(const Entry& e, int64_t gateways) {
  Params share = e.params;
  share.limit = static_cast<uint64_t>(ceilDiv(e.params.limit, gateways));
  return share;
}

// The limit as it would stand if this gateway knew the whole fleet's count: for the headers,
// and for how long a refused client should wait.
Decision SyncStore::fleetView(const Entry& e, int64_t now_ns) const {
  CounterState fleet{e.own.a, (e.known ? e.fleet : 0) + e.sending + e.unsynced, e.fleet_prev};
  return decide(fleet, e.params, now_ns);
}

void SyncStore::enqueue(Stripe& stripe, Entry& e, std::string_view key) {
  if (e.queued) return;
  e.queued = true;
  stripe.queue.emplace_back(key);
}

Decision SyncStore::take(std::string_view key, const Params& params, int64_t sync_ns,
                         int64_t now_ns) {
  Stripe& stripe = stripes_.of(key);
  std::lock_guard lock(stripe.mutex);
  Entry& e = stripes_.findOrAdd(stripe, key, [&](Stripe& s) { makeRoom(s, now_ns); });
  e.params = params;
  e.sync_ns = sync_ns;
  roll(e, now_ns);
  const Decision fleet = fleetView(e, now_ns);
  Decision d;
  d.reset_ns = fleet.reset_ns;
  if (redisDown()) {
    const Decision mine = decide(e.own, ownShare(e, fleetSize()), now_ns);  // counts in own
    d.allowed = mine.allowed;
    d.retry_after_ns = mine.retry_after_ns;
  } else {
    d.allowed = e.charged < (e.known ? e.lease : trustShare(e));
    if (d.allowed && now_ns < own_share_until_.load(std::memory_order_relaxed)) {
      CounterState own = e.own;
      const int64_t gateways = outage_fleet_size_.load(std::memory_order_relaxed);
      d.allowed = decide(own, ownShare(e, gateways), now_ns).allowed;
    }
    if (d.allowed) {
      ++e.own.b;
    } else if (fleet.allowed) {  // the fleet has room, this gateway's lease is used up
      d.retry_after_ns = std::clamp<int64_t>(e.last_sync_ns + e.sync_ns - now_ns, 1, e.sync_ns);
    } else {
      d.retry_after_ns = fleet.retry_after_ns;
    }
  }
  if (d.allowed) {
    ++e.charged;
    ++e.unsynced;
    if (e.batch != 0) ++e.since_taken;
    d.remaining = fleet.allowed ? fleet.remaining : 0;
  }
  e.active = true;
  enqueue(stripe, e, key);
  return d;
}

void SyncStore::giveBack(std::string_view key) {
  Stripe& stripe = stripes_.of(key);
  std::lock_guard lock(stripe.mutex);
  Entry* found = Map::find(stripe, key);
  if (found == nullptr) return;
  Entry& e = *found;
  if (e.charged > 0) --e.charged;
  if (e.own.b > 0) --e.own.b;
  if (e.since_taken > 0) --e.since_taken;
  --e.unsynced;  // may go below zero if the batch already took the request: Redis subtracts it
}

void SyncStore::takeBatch(int64_t now_ns, std::vector<Item>& out) {
  out.clear();
  const uint64_t batch = next_batch_.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string> keys;
  stripes_.forEachStripe([&](Stripe& stripe) {
    keys.clear();
    keys.swap(stripe.queue);
    for (std::string& key : keys) {
      Entry* found = Map::find(stripe, key);
      if (found == nullptr) continue;
      Entry& e = *found;
      e.queued = false;
      const Params& p = e.params;
      roll(e, now_ns);
      const int64_t start = e.own.a;
      if (e.prev_unsynced != 0) {
        out.push_back({Item::Op::Add, key, start - p.window_ns, e.prev_unsynced, 0, 0, p, batch});
        e.prev_unsynced = 0;
      }
      const bool due = e.batch == 0 && now_ns - e.last_sync_ns >= e.sync_ns - e.sync_ns / 10;
      if (!due) {
        if (e.active || e.held || e.unsynced != 0 || e.batch != 0) enqueue(stripe, e, key);
        continue;
      }
      Item item{Item::Op::Update, std::move(key), start, e.unsynced, 0, 0, p, batch};
      if (!e.active && e.unsynced == 0) {
        if (!e.held) continue;
        item.op = Item::Op::Idle;  // idle for an interval: most of the lease goes back
        item.standby = standbyShare(e);
      }
      if (sliding(p)) {
        // Rounded up: the previous window weighs at least this much until the next sync.
        const int64_t left = start + p.window_ns - now_ns;
        item.weight_ppm = static_cast<uint32_t>(ceilDiv(static_cast<__int128>(left) * 1'000'000,
                                                        p.window_ns));
      }
      e.sending = e.unsynced;
      e.unsynced = 0;
      e.since_taken = 0;
      e.active = false;
      e.batch = batch;
      e.last_sync_ns = now_ns;
      out.push_back(std::move(item));
    }
  });
}

void SyncStore::applyAnswer(const Item& item, const Answer& answer) {
  if (item.op == Item::Op::Add) return;
  Stripe& stripe = stripes_.of(item.key);
  std::lock_guard lock(stripe.mutex);
  Entry* found = Map::find(stripe, item.key);
  if (found == nullptr) return;
  Entry& e = *found;
  if (e.batch != item.batch || e.own.a != item.window_start_ns) return;
  e.batch = 0;
  e.sending = 0;
  // What was admitted since the batch was taken is charged to the new lease: the old one was
  // given up in Redis when the script ran.
  e.charged = e.since_taken;
  if (item.op == Item::Op::Idle) {
    e.held = false;  // the standby lease stays until the key is used again
    e.lease = answer.lease;
    return;
  }
  e.known = true;
  e.held = true;
  e.fleet = answer.fleet;
  if (sliding(e.params)) e.fleet_prev = answer.fleet_prev;
  e.room = answer.room;
  e.lease = answer.lease;
  enqueue(stripe, e, item.key);  // to renew the lease, or give it back, next interval
}

void SyncStore::applyFailure(const Item& item) {
  Stripe& stripe = stripes_.of(item.key);
  std::lock_guard lock(stripe.mutex);
  Entry* found = Map::find(stripe, item.key);
  if (found == nullptr) return;
  Entry& e = *found;
  const bool previous_window = item.window_start_ns == e.own.a - e.params.window_ns;
  if (item.op == Item::Op::Add || e.own.a != item.window_start_ns) {
    if (previous_window && sliding(e.params)) e.prev_unsynced += item.delta;
  } else if (e.batch == item.batch) {
    e.batch = 0;
    e.unsynced += e.sending;
    e.sending = 0;
    e.last_sync_ns = 0;  // due again at once
    e.active = e.active || item.op == Item::Op::Update;
  }
  enqueue(stripe, e, item.key);
}

void SyncStore::makeRoom(Stripe& stripe, int64_t now_ns) {
  const size_t before = stripe.entries.size();
  std::erase_if(stripe.entries, [now_ns](const auto& kv) { return over(kv, now_ns); });
  if (stripe.entries.size() < before) return;
  auto victim = stripe.entries.begin();
  int n = 0;
  for (auto it = stripe.entries.begin(); it != stripe.entries.end() && n < 8; ++it, ++n) {
    if (it->second.own.a < victim->second.own.a) victim = it;
  }
  stripe.entries.erase(victim);
}

void SyncStore::sweep(int64_t now_ns) {
  stripes_.forEachStripe([now_ns](Stripe& stripe) {
    std::erase_if(stripe.entries, [now_ns](const auto& kv) { return over(kv, now_ns); });
  });
}

void SyncStore::clear() {
  stripes_.forEachStripe([](Stripe& stripe) {
    stripe.entries.clear();
    stripe.queue.clear();
  });
}

size_t SyncStore::size() const { return stripes_.size(); }

}  // namespace portico::ratelimit
