#include "upstream/maglev.hpp"

#include <algorithm>

#include "core/siphash.hpp"

namespace portico::upstream {
namespace {

// Fixed keys: every gateway instance must place a name and a key the same way.
constexpr SipKey kOffsetKey{0x706f727469636f31u, 0x6d61676c65762d6fu};
constexpr SipKey kSkipKey{0x706f727469636f32u, 0x6d61676c65762d73u};
constexpr SipKey kRequestKey{0x706f727469636f33u, 0x6d61676c65762d6bu};

}  // namespace

uint64_t hashKey(std::string_view key) { return sipHash<2, 4>(kRequestKey, key); }

MaglevTable::MaglevTable(std::span<const std::string> names, std::span<const uint32_t> weights) {
  const size_t n = names.size();
  const uint32_t max_weight = n == 0 ? 0 : *std::max_element(weights.begin(), weights.end());
  if (n == 0 || max_weight == 0 || n >= UINT16_MAX) return;  // (the loader refuses so many)
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    offset[i] = sipHash<2, 4>(kOffsetKey, names[i]) % kSize;
    skip[i] = sipHash<2, 4>(kSkipKey, names[i]) % (kSize - 1) + 1;
  }
  constexpr uint16_t kFree = UINT16_MAX;
  slots_.assign(kSize, kFree);
  uint32_t filled = 0;
  // Round r: an endpoint takes a slot when its share of the weight crosses a whole number, so
  // each takes slots in proportion to its weight and all of them take turns evenly.
  for (uint64_t round = 0; filled < kSize; ++round) {
    for (size_t i = 0; i < n && filled < kSize; ++i) {
      if ((round + 1) * weights[i] / max_weight == round * weights[i] / max_weight) continue;
      uint64_t slot = (offset[i] + next[i] * skip[i]) % kSize;
      while (slots_[slot] != kFree) {
        ++next[i];
        slot = (offset[i] + next[i] * skip[i]) % kSize;
      }
      slots_[slot] = static_cast<uint16_t>(i);
      ++next[i];
      ++filled;
    }
  }
}

}  // namespace portico::upstream
