#pragma once
// The layout the local and batched stores share: counters spread over 64 cache-line-aligned
// stripes, each a map behind its own mutex held for a few dozen instructions, so workers meet
// on a lock only when they count in the same stripe at the same moment — there is no global
// lock. Callers lock a stripe's mutex themselves around what they do in it.

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/siphash.hpp"

namespace portico::ratelimit {

struct NoStripeExtra {};

template <typename Entry, typename Extra = NoStripeExtra>
class Stripes {
 public:
  struct Hash {
    using is_transparent = void;
    // Keyed: the keys come from clients (header:, claim:), who must not be able to pile them
    // into one stripe or bucket (review M6).
    size_t operator()(std::string_view s) const { return sipHash<1, 3>(processSipKey(), s); }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  using Entries = std::unordered_map<std::string, Entry, Hash, Equal>;
  struct alignas(64) Stripe : Extra {
    mutable std::mutex mutex;
    Entries entries;
  };
  static constexpr size_t kCount = 64;

  explicit Stripes(size_t max_keys) : max_per_stripe_(std::max<size_t>(1, max_keys / kCount)) {}

  Stripe& of(std::string_view key) {
    // The low bits pick the bucket inside the map; the stripe comes from the high ones.
    return stripes_[(Hash{}(key) >> 52) % kCount];
  }
  // With the stripe locked: the entry of `key`, made if missing, after `make_room(stripe)` when
  // the stripe is full.
  template <typename MakeRoom>
  Entry& findOrAdd(Stripe& stripe, std::string_view key, MakeRoom&& make_room) {
    auto it = stripe.entries.find(key);
    if (it != stripe.entries.end()) return it->second;
    if (stripe.entries.size() >= max_per_stripe_) make_room(stripe);
    return stripe.entries.emplace(std::string(key), Entry{}).first->second;
  }
  // With the stripe locked: the entry of `key`, or null.
  static Entry* find(Stripe& stripe, std::string_view key) {
    auto it = stripe.entries.find(key);
    return it == stripe.entries.end() ? nullptr : &it->second;
  }

  // Locks each stripe in turn.
  template <typename Fn>
  void forEachStripe(Fn&& fn) {
    for (Stripe& stripe : stripes_) {
      std::lock_guard lock(stripe.mutex);
      fn(stripe);
    }
  }
  size_t size() const {
    size_t n = 0;
    for (const Stripe& stripe : stripes_) {
      std::lock_guard lock(stripe.mutex);
      n += stripe.entries.size();
    }
    return n;
  }

 private:
  size_t max_per_stripe_;
  std::array<Stripe, kCount> stripes_;
};

}  // namespace portico::ratelimit
