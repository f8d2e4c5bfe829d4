#include "auth/token_cache.hpp"

namespace portico::auth {

TokenCache::TokenCache(size_t providers, size_t capacity)
    : tables_(providers), capacity_(capacity == 0 ? 1 : capacity) {}

const TokenCache::Entry* TokenCache::find(uint32_t provider, std::string_view token,
                                          int64_t now_ms) const {
  const Table& t = tables_[provider];
  auto it = t.map.find(token);
  if (it == t.map.end() || it->second.expires_ms <= now_ms) return nullptr;
  return &it->second;
}

void TokenCache::insert(uint32_t provider, std::string_view token, Entry entry) {
  Table& t = tables_[provider];
  std::string key(token);
  auto it = t.map.find(key);
  if (it != t.map.end()) {
    it->second = std::move(entry);
    return;
  }
  if (t.ring.size() < capacity_) {
    t.ring.push_back(key);
  } else {
    // Full: the oldest entry makes room (FIFO; a token in use is simply verified again).
    t.map.erase(t.ring[t.next]);
    t.ring[t.next] = key;
    t.next = (t.next + 1) % capacity_;
  }
  t.map.emplace(std::move(key), std::move(entry));
}

}  // namespace portico::auth
