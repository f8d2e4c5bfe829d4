#include "ratelimit/local_store.hpp"

#include <algorithm>

namespace portico::ratelimit {

LocalStore::LocalStore(size_t max_keys) : stripes_(max_keys) {}

Decision LocalStore::take(std::string_view key, const Params& params, int64_t now_ns,
                          const Window* window) {
  Stripe& stripe = stripes_.of(key);
  std::lock_guard lock(stripe.mutex);
  Entry& entry = stripes_.findOrAdd(stripe, key, [&](Stripe& s) { makeRoom(s, now_ns); });
  Decision decision = decide(entry.state, params, now_ns, window);
  entry.idle_from = idleFrom(entry.state, params);
  return decision;
}

void LocalStore::giveBack(std::string_view key, const Params& params) {
  Stripe& stripe = stripes_.of(key);
  std::lock_guard lock(stripe.mutex);
  Entry* entry = Map::find(stripe, key);
  if (entry == nullptr) return;
  ratelimit::giveBack(entry->state, params);
  entry->idle_from = idleFrom(entry->state, params);
}

void LocalStore::makeRoom(Stripe& stripe, int64_t now_ns) {
  const size_t before = stripe.entries.size();
  std::erase_if(stripe.entries, [now_ns](const auto& kv) { return kv.second.idle_from <= now_ns; });
  if (stripe.entries.size() < before) return;
  auto victim = stripe.entries.begin();
  int n = 0;
  for (auto it = stripe.entries.begin(); it != stripe.entries.end() && n < 8; ++it, ++n) {
    if (it->second.idle_from < victim->second.idle_from) victim = it;
  }
  stripe.entries.erase(victim);
  evictions_.fetch_add(1, std::memory_order_relaxed);
}

void LocalStore::sweep(int64_t now_ns) {
  stripes_.forEachStripe([now_ns](Stripe& stripe) {
    std::erase_if(stripe.entries,
                  [now_ns](const auto& kv) { return kv.second.idle_from <= now_ns; });
  });
}

size_t LocalStore::size() const { return stripes_.size(); }

std::atomic<int64_t>* LocalStore::concurrencyCounter(const std::string& route) {
  std::lock_guard lock(concurrency_mutex_);
  auto& slot = concurrency_[route];
  if (!slot) slot = std::make_unique<std::atomic<int64_t>>(0);
  return slot.get();
}

}  // namespace portico::ratelimit
