#include "ratelimit/local_store.hpp"

#include <algorithm>
#include <array>

namespace portico::ratelimit {

LocalStore::LocalStore(size_t max_keys, size_t sample)
    : stripes_(max_keys), sample_(std::clamp<size_t>(sample, 1, kMaxSample)) {}

Decision LocalStore::take(std::string_view key, const Params& params, int64_t now_ns,
                          const Window* window) {
  Stripe& stripe = stripes_.of(key);
  std::lock_guard lock(stripe.mutex);
  Entry& entry = stripes_.findOrAdd(stripe, key, [&](Stripe& s) { makeRoom(s, now_ns); });
  if (params.algorithm == config::RateLimit::Algorithm::Gcra) {
    // Callers read the clock before they get the lock, so a decision may come with an earlier
    // time than the one before it; GCRA's remaining count would then come out one short and be
    // reported twice. A key's decisions use the latest time any of them read (state.b, which
    // GCRA does not use otherwise).
    now_ns = std::max(now_ns, entry.state.b);
    entry.state.b = now_ns;
  }
  Decision decision = decide(entry.state, params, now_ns, window);
  entry.idle_from = idleFrom(entry.state, params);
  noteIdleFrom(stripe, entry);
  return decision;
}

void LocalStore::giveBack(std::string_view key, const Params& params) {
  Stripe& stripe = stripes_.of(key);
  std::lock_guard lock(stripe.mutex);
  Entry* entry = Map::find(stripe, key);
  if (entry == nullptr) return;
  ratelimit::giveBack(entry->state, params);
  entry->idle_from = idleFrom(entry->state, params);
  noteIdleFrom(stripe, *entry);
}

void LocalStore::makeRoom(Stripe& stripe, int64_t now_ns) {
  auto live = stripe.entries.end();
  if (eraseIdleAtHand(stripe, now_ns, live)) return;
  if (now_ns >= stripe.no_idle_before && eraseAllIdle(stripe, now_ns)) return;
  if (live == stripe.entries.end()) live = stripe.entries.begin();
  stripe.entries.erase(live);
  evictions_.fetch_add(1, std::memory_order_relaxed);
}

bool LocalStore::eraseIdleAtHand(Stripe& stripe, int64_t now_ns, Map::Entries::iterator& live) {
  Map::Entries& entries = stripe.entries;
  std::array<std::string_view, kMaxSample> idle;
  size_t idle_count = 0;
  size_t seen = 0;
  const size_t buckets = entries.bucket_count();
  for (size_t step = 0; step < buckets && seen < sample_; ++step) {
    stripe.hand = (stripe.hand + 1) % buckets;
    for (auto it = entries.begin(stripe.hand); it != entries.end(stripe.hand); ++it, ++seen) {
      if (it->second.idle_from <= now_ns) {
        if (idle_count < idle.size()) idle[idle_count++] = it->first;
      } else if (live == entries.end() || it->second.idle_from < live->second.idle_from) {
        live = entries.find(it->first);
      }
    }
  }
  if (idle_count == 0) return false;
  // The views point into the nodes; each is found before its own node goes.
  for (size_t i = 0; i < idle_count; ++i) entries.erase(entries.find(idle[i]));
  live = entries.end();
  return true;
}

bool LocalStore::eraseAllIdle(Stripe& stripe, int64_t now_ns) {
  const size_t before = stripe.entries.size();
  std::erase_if(stripe.entries, [now_ns](const auto& kv) { return kv.second.idle_from <= now_ns; });
  stripe.no_idle_before = INT64_MAX;
  for (const auto& [key, entry] : stripe.entries) noteIdleFrom(stripe, entry);
  return stripe.entries.size() < before;
}

void LocalStore::sweep(int64_t now_ns) {
  stripes_.forEachStripe([now_ns](Stripe& stripe) { eraseAllIdle(stripe, now_ns); });
}

size_t LocalStore::size() const { return stripes_.size(); }

std::atomic<int64_t>* LocalStore::concurrencyCounter(const std::string& route) {
  std::lock_guard lock(concurrency_mutex_);
  auto& slot = concurrency_[route];
  if (!slot) slot = std::make_unique<std::atomic<int64_t>>(0);
  return slot.get();
}

}  // namespace portico::ratelimit
