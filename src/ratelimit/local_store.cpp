#include "ratelimit/local_store.hpp"

#include <algorithm>

namespace portico::ratelimit {

LocalStore::LocalStore(size_t max_keys)
    : max_per_stripe_(std::max<size_t>(1, max_keys / kStripes)) {}

LocalStore::Stripe& LocalStore::stripeFor(std::string_view key) {
  // The low bits pick the bucket inside the map; take the stripe from the high ones.
  return stripes_[(Hash{}(key) >> 52) % kStripes];
}

Decision LocalStore::take(std::string_view key, const Params& params, int64_t now_ns,
                          const Window* window) {
  Stripe& stripe = stripeFor(key);
  std::lock_guard lock(stripe.mutex);
  auto it = stripe.entries.find(key);
  if (it == stripe.entries.end()) {
    if (stripe.entries.size() >= max_per_stripe_) makeRoom(stripe, now_ns);
    it = stripe.entries.emplace(std::string(key), Entry{}).first;
  }
  Entry& entry = it->second;
  Decision decision = decide(entry.state, params, now_ns, window);
  entry.idle_from = idleFrom(entry.state, params);
  return decision;
}

void LocalStore::giveBack(std::string_view key, const Params& params) {
  Stripe& stripe = stripeFor(key);
  std::lock_guard lock(stripe.mutex);
  auto it = stripe.entries.find(key);
  if (it == stripe.entries.end()) return;
  ratelimit::giveBack(it->second.state, params);
  it->second.idle_from = idleFrom(it->second.state, params);
}

void LocalStore::makeRoom(Stripe& stripe, int64_t now_ns) {
  std::erase_if(stripe.entries, [now_ns](const auto& kv) { return kv.second.idle_from <= now_ns; });
  if (stripe.entries.size() < max_per_stripe_) return;
  auto victim = stripe.entries.begin();
  int n = 0;
  for (auto it = stripe.entries.begin(); it != stripe.entries.end() && n < 8; ++it, ++n) {
    if (it->second.idle_from < victim->second.idle_from) victim = it;
  }
  stripe.entries.erase(victim);
  evictions_.fetch_add(1, std::memory_order_relaxed);
}

void LocalStore::sweep(int64_t now_ns) {
  for (Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    std::erase_if(stripe.entries,
                  [now_ns](const auto& kv) { return kv.second.idle_from <= now_ns; });
  }
}

size_t LocalStore::size() const {
  size_t n = 0;
  for (const Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    n += stripe.entries.size();
  }
  return n;
}

std::atomic<int64_t>* LocalStore::concurrencyCounter(const std::string& route) {
  std::lock_guard lock(concurrency_mutex_);
  auto& slot = concurrency_[route];
  if (!slot) slot = std::make_unique<std::atomic<int64_t>>(0);
  return slot.get();
}

}  // namespace portico::ratelimit
