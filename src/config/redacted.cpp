// GET /admin/config: the config in force as JSON, in the shape it was written, with every secret
// replaced. Secrets are found by their key wherever they are, and then by their value: a header
// set to ${API_KEY} is as secret as the key itself.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "config/env.hpp"
#include "config/loader_context.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kRedacted = "<redacted>";

bool isSecretKey(std::string_view key) {
  static constexpr std::string_view kSecretKeys[] = {
      "token",       "metrics_token",  "password",      "password_hash", "secret",
      "secret_base64", "client_secret", "api_keys",     "api_key_sha256"};
  for (std::string_view k : kSecretKeys) {
    if (key == k) return true;
  }
  return false;
}

class Redactor {
 public:
  Redactor(const YamlDocument& doc, const EnvLookup& env) : doc_(doc), env_(env) {}

  // The values under secret keys, first, so that the same values elsewhere are found.
  void collectSecrets(NodeId id, bool secret) {
    const YamlNode& n = doc_[id];
    switch (n.kind) {
      case YamlNode::Kind::Scalar:
        if (secret) {
          std::string value = expand(n.scalar);
          if (!value.empty()) secrets_.insert(std::move(value));
        }
        break;
      case YamlNode::Kind::Sequence:
        for (NodeId child : n.children) collectSecrets(child, secret);
        break;
      case YamlNode::Kind::Map:
        for (size_t i = 0; i + 1 < n.children.size(); i += 2) {
          const YamlNode& key = doc_[n.children[i]];
          collectSecrets(n.children[i + 1], secret || isSecretKey(key.scalar));
        }
        break;
      case YamlNode::Kind::Null:
        break;
    }
  }

  nlohmann::ordered_json toJson(NodeId id, bool secret, int depth = 0) {
    const YamlNode& n = doc_[id];
    if (depth > 64) return nullptr;  // an alias cycle cannot happen; a deep document is cut
    switch (n.kind) {
      case YamlNode::Kind::Null:
        return nullptr;
      case YamlNode::Kind::Scalar:
        return scalar(n.scalar, secret);
      case YamlNode::Kind::Sequence: {
        nlohmann::ordered_json list = nlohmann::ordered_json::array();
        for (NodeId child : n.children) list.push_back(toJson(child, secret, depth + 1));
        return list;
      }
      case YamlNode::Kind::Map: {
        nlohmann::ordered_json object = nlohmann::ordered_json::object();
        for (size_t i = 0; i + 1 < n.children.size(); i += 2) {
          std::string key = doc_[n.children[i]].scalar;
          bool child_secret = secret || isSecretKey(key);
          object[key] = toJson(n.children[i + 1], child_secret, depth + 1);
        }
        return object;
      }
    }
    return nullptr;
  }

 private:
  std::string expand(const std::string& text) {
    std::vector<std::string> problems;
    return expandEnv(text, env_, problems);
  }

  nlohmann::ordered_json scalar(const std::string& raw, bool secret) {
    if (secret) return kRedacted;
    std::string value = expand(raw);
    // Inside a longer value too ("Bearer <token>"), unless the secret is so short that
    // ordinary words would contain it.
    for (const std::string& s : secrets_) {
      if (s.size() >= 6 ? value.find(s) != std::string::npos : value == s) return kRedacted;
    }
    if (value == "true") return true;
    if (value == "false") return false;
    if (!value.empty() && value.size() < 19 &&
        value.find_first_not_of("0123456789") == std::string::npos &&
        (value.size() == 1 || value[0] != '0')) {
      return std::stoll(value);
    }
    // A decimal like 0.25 (a sample rate, a failure rate) is a number too.
    if (value.size() < 24 && value.find_first_not_of("0123456789.") == std::string::npos &&
        std::count(value.begin(), value.end(), '.') == 1 && value.front() != '.' &&
        value.back() != '.') {
      return std::stod(value);
    }
    return value;
  }

  const YamlDocument& doc_;
  const EnvLookup& env_;
  std::set<std::string> secrets_;
};

}  // namespace

std::string redactedJson(const YamlDocument& doc, const EnvLookup& env) {
  Redactor redactor(doc, env);
  redactor.collectSecrets(doc.root, false);
  return redactor.toJson(doc.root, false).dump(-1, ' ', false,
                                               nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace portico::config::detail
