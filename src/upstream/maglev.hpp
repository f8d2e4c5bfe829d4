#pragma once
// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table in which each endpoint
// owns slots in proportion to its weight. A key's hash picks a slot; removing one of N endpoints
// moves only about 1/N of the keys, and the table depends on the endpoints' names alone, so
// every worker (and every gateway instance) maps a key to the same endpoint.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace portico::upstream {

class MaglevTable {
 public:
  static constexpr uint32_t kSize = 65537;  // a prime, far above any endpoint count

  MaglevTable() = default;
  // `names` identify the endpoints (weights 0..1000; at least one above 0).
  MaglevTable(std::span<const std::string> names, std::span<const uint32_t> weights);

  bool empty() const { return slots_.empty(); }
  // The endpoint (index into `names`) for a key's hash.
  uint32_t lookup(uint64_t hash) const { return slots_[hash % kSize]; }

 private:
  std::vector<uint16_t> slots_;
};

// The hash of a consistent_hash key: the same in every process (a fixed SipHash key).
uint64_t hashKey(std::string_view key);

}  // namespace portico::upstream
