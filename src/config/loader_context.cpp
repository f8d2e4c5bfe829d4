#include "config/loader_context.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <unordered_map>

#include "config/env.hpp"
#include "config/values.hpp"

namespace portico::config::detail {
namespace {

// Small maps are the common case (a route has a handful of keys): a linear scan beats hashing.
constexpr size_t kLinearDuplicateScan = 16;

}  // namespace

std::string Item::label() const { return list_item ? "an item of " + quote(key) : quote(key); }

const Field* MapFields::find(std::string_view key) const {
  for (const Field& field : fields) {
    if (field.key == key) {
      return &field;
    }
  }
  return nullptr;
}

std::string resolveConfigPath(const Context& ctx, const std::string& path) {
  namespace fs = std::filesystem;
  fs::path full(path);
  if (full.is_relative()) {
    full = fs::absolute(fs::path(ctx.file()).parent_path() / full);
  }
  return full.lexically_normal().string();
}

std::string joinChoices(std::span<const std::string_view> choices) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) {
      out += i + 1 == choices.size() ? " or " : ", ";
    }
    out += choices[i];
  }
  return out;
}

Context::Context(const YamlDocument& doc, std::string file, const EnvLookup& env)
    : doc_(doc), file_(std::move(file)), env_(env) {}

void Context::error(Position pos, std::string message) {
  errors_.push_back(ConfigError{file_, pos.line, pos.column, std::move(message)});
}

std::vector<ConfigError> Context::takeErrors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  auto same = [](const ConfigError& a, const ConfigError& b) {
    return a.line == b.line && a.column == b.column && a.message == b.message;
  };
  errors_.erase(std::unique(errors_.begin(), errors_.end(), same), errors_.end());
  return std::move(errors_);
}

std::string Context::kindName(const YamlNode& node) const {
  switch (node.kind) {
    case YamlNode::Kind::Null:
      return "an empty value";
    case YamlNode::Kind::Scalar:
      return "a string";
    case YamlNode::Kind::Sequence:
      return "a list";
    case YamlNode::Kind::Map:
      return "a map";
  }
  return "something else";
}

void Context::typeError(const Item& item, std::string_view expected) {
  const YamlNode& n = doc_[item.node];
  std::string message =
      "expected " + std::string(expected) + " for " + item.label() + ", got " + kindName(n);
  // A lone value where a list belongs is a frequent slip; show the fix.
  if (expected == "a list" && n.kind == YamlNode::Kind::Scalar && n.scalar.size() <= 60) {
    message += " (write [" + n.scalar + "])";
  }
  error(n.pos, std::move(message));
}

bool Context::expectMap(const Item& item) {
  if (doc_[item.node].kind == YamlNode::Kind::Map) {
    return true;
  }
  typeError(item, "a map");
  return false;
}

bool Context::expectList(const Item& item) {
  if (doc_[item.node].kind == YamlNode::Kind::Sequence) {
    return true;
  }
  typeError(item, "a list");
  return false;
}

MapFields Context::readMap(const Item& item, std::string_view context, const KeySet* keys) {
  MapFields out;
  out.pos = doc_[item.node].pos;
  if (!expectMap(item)) {
    return out;
  }
  out.valid = true;
  const std::vector<NodeId>& children = doc_[item.node].children;
  out.fields.reserve(children.size() / 2);
  std::unordered_map<std::string_view, Position> seen;  // only for large maps
  std::vector<Field> all;  // every scalar key, to find duplicates of unknown keys as well
  all.reserve(children.size() / 2);
  for (size_t i = 0; i + 1 < children.size(); i += 2) {
    const YamlNode& key_node = doc_[children[i]];
    if (key_node.kind != YamlNode::Kind::Scalar) {
      error(key_node.pos, "expected a plain key, got " + kindName(key_node));
      continue;
    }
    Field field{key_node.scalar, key_node.pos, children[i + 1]};
    std::optional<Position> first;
    if (children.size() / 2 <= kLinearDuplicateScan) {
      for (const Field& other : all) {
        if (other.key == field.key) {
          first = other.key_pos;
          break;
        }
      }
    } else if (auto [it, inserted] = seen.emplace(field.key, field.key_pos); !inserted) {
      first = it->second;
    }
    if (first) {
      error(field.key_pos, "duplicate key " + quote(field.key) + " (first at line " +
                               std::to_string(first->line) + ")");
      continue;
    }
    all.push_back(field);
    if (keys != nullptr) {
      if (std::find(keys->supported.begin(), keys->supported.end(), field.key) !=
          keys->supported.end()) {
        out.fields.push_back(field);
      } else if (std::find(keys->unsupported.begin(), keys->unsupported.end(), field.key) !=
                 keys->unsupported.end()) {
        out.unsupported_seen = true;
        error(field.key_pos, quote(field.key) + " is not supported yet by this version of portico");
      } else if (field.key == "<<") {
        error(field.key_pos, "YAML merge keys (\"<<\") are not supported; write the keys out");
      } else {
        std::string message =
            context.empty() ? "unknown top-level key " + quote(field.key)
                            : "unknown key " + quote(field.key) + " in " + std::string(context);
        std::vector<std::string_view> candidates(keys->supported.begin(), keys->supported.end());
        candidates.insert(candidates.end(), keys->unsupported.begin(), keys->unsupported.end());
        if (auto suggestion = closestMatch(field.key, candidates)) {
          message += " (did you mean " + quote(*suggestion) + "?)";
        }
        error(field.key_pos, std::move(message));
      }
    } else {
      out.fields.push_back(field);
    }
  }
  return out;
}

std::vector<Item> Context::readList(const Item& item, bool non_empty) {
  std::vector<Item> out;
  if (!expectList(item)) {
    return out;
  }
  const YamlNode& n = doc_[item.node];
  if (non_empty && n.children.empty()) {
    error(n.pos, item.label() + " must not be empty");
    return out;
  }
  out.reserve(n.children.size());
  for (NodeId child : n.children) {
    out.push_back(Item{child, item.key, true});
  }
  return out;
}

void Context::readStrings(const Item& item, std::vector<std::string>& out) {
  for (const Item& entry : readList(item, false)) {
    auto value = text(entry);
    if (!value) {
      continue;
    }
    if (value->empty()) {
      error(pos(entry), entry.label() + " must not be empty");
      continue;
    }
    if (std::find(out.begin(), out.end(), *value) == out.end()) {
      out.push_back(std::move(*value));
    }
  }
}

void Context::requireKey(const MapFields& map, std::string_view key, std::string_view context) {
  if (map.valid && map.find(key) == nullptr) {
    error(map.pos, "missing required key " + quote(key) +
                       (context.empty() ? "" : " in " + std::string(context)));
  }
}

std::optional<std::string> Context::text(const Item& item) {
  const YamlNode& n = doc_[item.node];
  if (n.kind != YamlNode::Kind::Scalar) {
    typeError(item, "a string");
    return std::nullopt;
  }
  if (n.scalar.find("${") == std::string::npos) {
    return n.scalar;
  }
  std::vector<std::string> problems;
  std::string expanded = expandEnv(n.scalar, env_, problems);
  if (!problems.empty()) {
    for (std::string& problem : problems) {
      error(n.pos, std::move(problem));
    }
    return std::nullopt;
  }
  return expanded;
}

std::optional<bool> Context::boolean(const Item& item) {
  auto value = text(item);
  if (!value) {
    return std::nullopt;
  }
  // YAML 1.2 core schema spellings only; yes/no/on/off are YAML 1.1 traps.
  if (*value == "true" || *value == "True" || *value == "TRUE") {
    return true;
  }
  if (*value == "false" || *value == "False" || *value == "FALSE") {
    return false;
  }
  error(pos(item),
        "invalid value " + quote(*value) + " for " + item.label() + " (use true or false)");
  return std::nullopt;
}

std::optional<int64_t> Context::integer(const Item& item, int64_t min, int64_t max) {
  auto value = text(item);
  if (!value) {
    return std::nullopt;
  }
  int64_t number = 0;
  const char* begin = value->data();
  const char* end = begin + value->size();
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || ptr != end || number < min || number > max) {
    error(pos(item), "invalid value " + quote(*value) + " for " + item.label() +
                         " (use a whole number from " + std::to_string(min) + " to " +
                         std::to_string(max) + ")");
    return std::nullopt;
  }
  return number;
}

std::optional<double> Context::number(const Item& item, double min, double max) {
  auto value = text(item);
  if (!value) {
    return std::nullopt;
  }
  double number = 0;
  const char* begin = value->data();
  const char* end = begin + value->size();
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || ptr != end || !std::isfinite(number) || number < min || number > max) {
    auto bound = [](double d) {
      std::string s = std::to_string(d);
      s.erase(s.find_last_not_of('0') + 1);
      if (!s.empty() && s.back() == '.') {
        s.pop_back();
      }
      return s;
    };
    error(pos(item), "invalid value " + quote(*value) + " for " + item.label() +
                         " (use a number from " + bound(min) + " to " + bound(max) + ")");
    return std::nullopt;
  }
  return number;
}

std::optional<Duration> Context::duration(const Item& item, bool positive) {
  auto value = text(item);
  if (!value) {
    return std::nullopt;
  }
  auto parsed = parseDuration(*value);
  if (!parsed) {
    error(pos(item), "invalid duration " + quote(*value) + " (use 250ms, 5s, 1m, 1h, 1d)");
    return std::nullopt;
  }
  if (positive && parsed->count() == 0) {
    error(pos(item), item.label() + " must be greater than 0");
    return std::nullopt;
  }
  return parsed;
}

std::optional<uint64_t> Context::size(const Item& item, bool positive) {
  auto value = text(item);
  if (!value) {
    return std::nullopt;
  }
  auto parsed = parseSize(*value);
  if (!parsed) {
    error(pos(item), "invalid size " + quote(*value) + " (use 512, 64KiB, 10MiB, 1GiB)");
    return std::nullopt;
  }
  if (positive && *parsed == 0) {
    error(pos(item), item.label() + " must be greater than 0");
    return std::nullopt;
  }
  return parsed;
}

std::optional<size_t> Context::choice(const Item& item, std::span<const std::string_view> choices) {
  auto value = text(item);
  if (!value) {
    return std::nullopt;
  }
  for (size_t i = 0; i < choices.size(); ++i) {
    if (*value == choices[i]) {
      return i;
    }
  }
  error(pos(item), "invalid value " + quote(*value) + " for " + item.label() + " (use " +
                       joinChoices(choices) + ")");
  return std::nullopt;
}

void checkFetchUrl(Context& ctx, const MapFields& map, const Field& url_field,
                   std::string_view url) {
  bool insecure = false;
  if (const Field* f = map.find("insecure")) insecure = ctx.boolean(f->item()).value_or(false);
  if (Problem problem = checkPlainHttpUrl(url, insecure)) {
    ctx.error(ctx.pos(url_field.item()), quote(url_field.key) + ": " + *problem);
  }
}

}  // namespace portico::config::detail
