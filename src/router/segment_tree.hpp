#pragma once
// The router's index: a trie over '/'-separated path segments, plus the hash table its literal
// edges live in. Built once by the Router constructor, read-only afterwards (safe to share across
// threads). Routes are identified by their rank (0 = preferred), so every list below is sorted by
// preference and a lookup can stop scanning a list at the first route that fully matches.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "router/router.hpp"

namespace portico::router {

inline constexpr uint32_t kNoId = UINT32_MAX;

// A hash map from (parent id, string) to a uint32 id, with open addressing and linear probing.
// One table holds every literal edge of every tree (parent = node id), which keeps 100,000 nodes
// with one child each cheap, and also serves the host lookups (parent = a small tag). Keys are
// copied into one arena string, so lookups take string_views and never allocate.
class EdgeMap {
 public:
  uint32_t find(uint32_t parent, std::string_view key) const;
  // The id stored for (parent, key), inserting `value` first if there is none.
  uint32_t findOrInsert(uint32_t parent, std::string_view key, uint32_t value);
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t parent = 0;
    uint32_t value = kNoId;  // kNoId = empty slot
    uint32_t key_offset = 0;
    uint32_t key_length = 0;
  };
  static uint64_t hashKey(uint32_t parent, std::string_view key);
  bool slotHolds(const Slot& slot, uint64_t hash, uint32_t parent, std::string_view key) const;
  void grow();

  std::vector<Slot> slots_;  // power-of-two size, at most half full
  size_t size_ = 0;
  std::string keys_;
};

// Which route list of a node: prefix routes whose prefix ends at the node, and exact/template
// routes whose path ends there, without or with a trailing '/'.
enum class ListKind : uint8_t { Prefix = 0, Terminal = 1, TerminalSlash = 2 };

// Captured {param} segments along the current walk, in template order.
struct Captures {
  std::array<std::string_view, PathParams::kMax> values;
  uint8_t count = 0;
};

// A forest of segment tries (one root per host bucket) sharing one node array and one EdgeMap.
// Each node has literal children (in the EdgeMap), at most one {param} child, and three rank
// lists. A lookup walks one node per path segment, branching only where a {param} child exists
// next to a literal one, so its cost does not depend on how many routes the forest holds.
class SegmentTree {
 public:
  uint32_t addRoot();
  // Building. A literal or {param} child of `node`, created if missing.
  uint32_t literalChild(uint32_t node, std::string_view segment);
  uint32_t paramChild(uint32_t node);
  void attach(uint32_t node, ListKind kind, uint32_t rank);
  // Sorts and flattens the lists; must be called once, after the last attach() and before walk().
  void finish();

  // Calls visit(ranks, captures) for every list of routes whose path shape matches `path`:
  // the prefix list of each node on the way, and the terminal list where the path ends. `path`
  // is normalized; "/" is the root itself, "/a/" ends at node "a" with a trailing slash.
  template <class Visitor>
  void walk(uint32_t root, std::string_view path, Visitor& visit) const {
    Captures captures;
    walkFrom(root, path == "/" ? std::string_view() : path, captures, visit);
  }

  size_t nodeCount() const { return nodes_.size(); }

 private:
  struct Node {
    uint32_t param_child = kNoId;
    // List k holds ranks_[lists[k], lists[k + 1]).
    std::array<uint32_t, 4> lists{};
  };
  struct Attachment {
    uint32_t node;
    ListKind kind;
    uint32_t rank;
    auto operator<=>(const Attachment&) const = default;
  };

  std::span<const uint32_t> list(const Node& node, ListKind kind) const {
    const auto k = static_cast<size_t>(kind);
    return {ranks_.data() + node.lists[k], node.lists[k + 1] - node.lists[k]};
  }

  // `rest` is what follows the segments consumed so far: "" or "/" at the end, else "/seg...".
  template <class Visitor>
  void walkFrom(uint32_t id, std::string_view rest, Captures& captures, Visitor& visit) const {
    const Node& node = nodes_[id];
    visit(list(node, ListKind::Prefix), captures);
    if (rest.empty()) {
      visit(list(node, ListKind::Terminal), captures);
      return;
    }
    if (rest.size() == 1) {  // "/": the path ends with a trailing slash here
      visit(list(node, ListKind::TerminalSlash), captures);
      return;
    }
    const size_t end = rest.find('/', 1);
    const std::string_view segment = rest.substr(1, end == std::string_view::npos ? end : end - 1);
    const std::string_view next =
        end == std::string_view::npos ? std::string_view() : rest.substr(end);
    if (const uint32_t child = edges_.find(id, segment); child != kNoId) {
      walkFrom(child, next, captures, visit);
    }
    // A {param} is one non-empty segment; a literal child does not shadow it, since a less
    // specific template may still be the only route whose other conditions match.
    if (node.param_child != kNoId && !segment.empty() && captures.count < PathParams::kMax) {
      captures.values[captures.count++] = segment;
      walkFrom(node.param_child, next, captures, visit);
      --captures.count;
    }
  }

  std::vector<Node> nodes_;
  EdgeMap edges_;
  std::vector<uint32_t> ranks_;
  std::vector<Attachment> pending_;  // until finish()
};

}  // namespace portico::router
