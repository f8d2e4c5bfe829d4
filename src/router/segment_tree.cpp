#include "router/segment_tree.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace portico::router {

// FNV-1a over the key, seeded by the parent, then a splitmix64 finalizer so that the low bits
// used as the slot index depend on every input bit. Segments are short; this beats a generic hash.
uint64_t EdgeMap::hashKey(uint32_t parent, std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ULL ^ (static_cast<uint64_t>(parent) * 0x9e3779b97f4a7c15ULL);
  for (const char c : key) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

bool EdgeMap::slotHolds(const Slot& slot, uint64_t hash, uint32_t parent,
                        std::string_view key) const {
  return slot.hash == hash && slot.parent == parent && slot.key_length == key.size() &&
         (key.empty() || std::memcmp(keys_.data() + slot.key_offset, key.data(), key.size()) == 0);
}

uint32_t EdgeMap::find(uint32_t parent, std::string_view key) const {
  if (slots_.empty()) return kNoId;
  const uint64_t hash = hashKey(parent, key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.value == kNoId) return kNoId;
    if (slotHolds(slot, hash, parent, key)) return slot.value;
  }
}

uint32_t EdgeMap::findOrInsert(uint32_t parent, std::string_view key, uint32_t value) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t hash = hashKey(parent, key);
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  for (;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.value == kNoId) break;
    if (slotHolds(slot, hash, parent, key)) return slot.value;
  }
  if (keys_.size() + key.size() > UINT32_MAX) throw std::length_error("router: keys too large");
  slots_[i] = Slot{hash, parent, value, static_cast<uint32_t>(keys_.size()),
                   static_cast<uint32_t>(key.size())};
  keys_.append(key);
  ++size_;
  return value;
}

void EdgeMap::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
  const size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.value == kNoId) continue;
    size_t i = slot.hash & mask;
    while (slots_[i].value != kNoId) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

uint32_t SegmentTree::addRoot() {
  nodes_.emplace_back();
  return static_cast<uint32_t>(nodes_.size() - 1);
}

uint32_t SegmentTree::literalChild(uint32_t node, std::string_view segment) {
  const auto next = static_cast<uint32_t>(nodes_.size());
  const uint32_t child = edges_.findOrInsert(node, segment, next);
  if (child == next) nodes_.emplace_back();
  return child;
}

uint32_t SegmentTree::paramChild(uint32_t node) {
  if (nodes_[node].param_child == kNoId) {
    const auto child = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();  // may reallocate: index nodes_ again below
    nodes_[node].param_child = child;
  }
  return nodes_[node].param_child;
}

void SegmentTree::attach(uint32_t node, ListKind kind, uint32_t rank) {
  pending_.push_back(Attachment{node, kind, rank});
}

void SegmentTree::finish() {
  // Sorting by (node, kind, rank) lays every list out contiguously and in rank order; a route
  // attached twice to one node (the same host listed twice) collapses into one entry.
  std::sort(pending_.begin(), pending_.end());
  pending_.erase(std::unique(pending_.begin(), pending_.end()), pending_.end());
  ranks_.clear();
  ranks_.reserve(pending_.size());
  size_t next = 0;
  for (uint32_t id = 0; id < nodes_.size(); ++id) {
    Node& node = nodes_[id];
    for (size_t k = 0; k < 3; ++k) {
      node.lists[k] = static_cast<uint32_t>(ranks_.size());
      while (next < pending_.size() && pending_[next].node == id &&
             static_cast<size_t>(pending_[next].kind) == k) {
        ranks_.push_back(pending_[next++].rank);
      }
    }
    node.lists[3] = static_cast<uint32_t>(ranks_.size());
  }
  pending_.clear();
  pending_.shrink_to_fit();
}

}  // namespace portico::router
