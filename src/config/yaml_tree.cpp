#include "config/yaml_tree.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <sstream>
#include <unordered_map>

namespace portico::config::detail {
namespace {

Position toPosition(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) {
    return {};
  }
  return {mark.line + 1, mark.column + 1};
}

class TreeBuilder final : public YAML::EventHandler {
 public:
  explicit TreeBuilder(YamlDocument& doc) : doc_(doc) {}

  bool hasRoot() const { return has_root_; }
  Position documentStart() const { return document_start_; }

  void OnDocumentStart(const YAML::Mark& mark) override { document_start_ = toPosition(mark); }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    NodeId id = add(YamlNode::Kind::Null, mark, anchor);
    // yaml-cpp marks an empty value (`key:` and nothing) at the next token, often on the next
    // line; the key's position is where a reader looks for the mistake.
    if (!stack_.empty()) {
      const YamlNode& parent = doc_.nodes[stack_.back()];
      if (parent.kind == YamlNode::Kind::Map && parent.children.size() % 2 == 1) {
        doc_.nodes[id].pos = doc_.nodes[parent.children.back()].pos;
      }
    }
    attach(id);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it != anchors_.end()) {
      attach(it->second);
    } else {
      attach(add(YamlNode::Kind::Null, mark, YAML::NullAnchor));
    }
  }

  void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                const std::string& value) override {
    NodeId id = add(YamlNode::Kind::Scalar, mark, anchor);
    doc_.nodes[id].scalar = value;
    attach(id);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    open(add(YamlNode::Kind::Sequence, mark, anchor));
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    open(add(YamlNode::Kind::Map, mark, anchor));
  }
  void OnMapEnd() override { close(); }

 private:
  NodeId add(YamlNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    auto id = static_cast<NodeId>(doc_.nodes.size());
    YamlNode& node = doc_.nodes.emplace_back();
    node.kind = kind;
    node.pos = toPosition(mark);
    if (anchor != YAML::NullAnchor) {
      anchors_[anchor] = id;
    }
    return id;
  }

  // Children are attached when they start, so containers list them in document order.
  void attach(NodeId id) {
    if (stack_.empty()) {
      if (!has_root_) {
        doc_.root = id;
        has_root_ = true;
      }
      return;
    }
    doc_.nodes[stack_.back()].children.push_back(id);
  }

  void open(NodeId id) {
    attach(id);
    stack_.push_back(id);
  }

  void close() {
    if (!stack_.empty()) {
      stack_.pop_back();
    }
  }

  YamlDocument& doc_;
  std::vector<NodeId> stack_;
  std::unordered_map<YAML::anchor_t, NodeId> anchors_;
  bool has_root_ = false;
  Position document_start_;
};

// yaml-cpp's messages name the grammar rule; two mistakes behind them are common enough in
// configs to deserve a hint.
std::string hintFor(std::string_view text, Position pos, const std::string& message) {
  if (message.find("referenced anchor is not defined") != std::string::npos) {
    return " (quote values that start with '*', like \"*.example.com\")";
  }
  // The leading whitespace of the line at fault.
  size_t start = 0;
  for (int line = 1; line < pos.line && start != std::string_view::npos; ++line) {
    start = text.find('\n', start);
    start = start == std::string_view::npos ? start : start + 1;
  }
  if (start != std::string_view::npos) {
    size_t end = text.find_first_not_of(" \t", start);
    std::string_view indent = text.substr(start, end == std::string_view::npos ? end : end - start);
    if (indent.find('\t') != std::string_view::npos) {
      return " (indent with spaces: YAML does not allow tabs)";
    }
  }
  return "";
}

}  // namespace

YamlParseResult parseYaml(std::string_view text) {
  YamlParseResult result;
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    YamlDocument doc;
    // Roughly one node per 8 bytes in dense configs; reserving avoids copying a million nodes
    // several times over while the vector grows.
    doc.nodes.reserve(text.size() / 8 + 16);
    TreeBuilder builder(doc);
    if (!parser.HandleNextDocument(builder) || !builder.hasRoot()) {
      return result;
    }
    // A second document would be silently ignored by a plain Load(); refuse it instead, since
    // it usually is a config pasted after another one.
    YamlDocument extra;
    TreeBuilder extra_builder(extra);
    if (parser.HandleNextDocument(extra_builder)) {
      result.error = YamlParseError{
          extra_builder.documentStart(),
          "the file holds more than one YAML document (\"---\"); put the whole config in one"};
      return result;
    }
    result.document = std::move(doc);
  } catch (const YAML::Exception& e) {
    result.document.reset();
    Position pos = toPosition(e.mark);
    result.error = YamlParseError{pos, "invalid YAML: " + e.msg + hintFor(text, pos, e.msg)};
  } catch (const std::exception& e) {
    result.document.reset();
    result.error = YamlParseError{{}, std::string("cannot parse YAML: ") + e.what()};
  }
  return result;
}

}  // namespace portico::config::detail
