#pragma once
// A minimal, read-only YAML document model built from yaml-cpp's parser events. The loader uses
// it instead of YAML::Node because it keeps a position on every node (including empty values,
// which get their key's line instead of the next token's) and because building YAML::Node trees
// costs about three times the parse itself, which matters for configs with 100,000 routes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portico::config::detail {

struct Position {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

using NodeId = uint32_t;

struct YamlNode {
  enum class Kind : uint8_t { Null, Scalar, Sequence, Map };
  Kind kind = Kind::Null;
  Position pos;
  std::string scalar;  // Kind::Scalar only
  // Sequence: the items. Map: key, value, key, value, ... in document order (duplicates kept,
  // the loader reports them). An alias shares the anchored node's id, so this is a DAG.
  std::vector<NodeId> children;
};

struct YamlDocument {
  std::vector<YamlNode> nodes;
  NodeId root = 0;

  const YamlNode& operator[](NodeId id) const { return nodes[id]; }
};

struct YamlParseError {
  Position pos;
  std::string message;
};

// Parses exactly one document. Never throws. An empty input (or only comments) yields nullopt
// with no error; syntax errors, and a second document in the same text, yield an error.
struct YamlParseResult {
  std::optional<YamlDocument> document;
  std::optional<YamlParseError> error;
};
YamlParseResult parseYaml(std::string_view text);

}  // namespace portico::config::detail
