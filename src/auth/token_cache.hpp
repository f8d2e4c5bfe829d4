#pragma once
// Verified JWTs, so a token is checked (an RS256 signature costs tens of microseconds) once and
// then found by a hash lookup. One cache per worker and config snapshot: no locks, and a reload
// (which may change keys or policies) starts empty. Entries never outlive the token's `exp`.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/jwt/json.hpp"
#include "config/model.hpp"

namespace portico::auth {

class TokenCache {
 public:
  struct Entry {
    std::shared_ptr<const jwt::Json> claims;
    const config::Consumer* consumer = nullptr;
    int64_t expires_ms = 0;  // unix milliseconds: the entry is dead from then on
    bool active = true;   // false: a remembered refusal (a wrong password, an inactive token)
  };

  // `capacity` bounds the entries per provider; beyond it the oldest entry goes.
  explicit TokenCache(size_t providers, size_t capacity = 10'000);

  // The live entry for `token` under `provider`, or null. No allocation.
  const Entry* find(uint32_t provider, std::string_view token, int64_t now_ms) const;
  void insert(uint32_t provider, std::string_view token, Entry entry);
  size_t size(uint32_t provider) const { return tables_[provider].map.size(); }
  // Forgets the provider's tokens (its key set changed: they must be verified again).
  void clear(uint32_t provider) {
    tables_[provider].map.clear();
    tables_[provider].ring.clear();
    tables_[provider].next = 0;
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Table {
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> map;
    std::vector<std::string> ring;  // insertion order, for eviction
    size_t next = 0;
  };
  std::vector<Table> tables_;
  size_t capacity_;
};

}  // namespace portico::auth
