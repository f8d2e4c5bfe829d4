#include "transcode/http_rule_wire.hpp"

#include <google/protobuf/unknown_field_set.h>

#include <string_view>

namespace portico::transcode {
namespace {

namespace pb = google::protobuf;

// google/api/http.proto's field numbers.
enum HttpRuleField : int {
  kGet = 2,
  kPut = 3,
  kPost = 4,
  kDelete = 5,
  kPatch = 6,
  kBody = 7,
  kCustom = 8,
  kAdditionalBindings = 11,
  kResponseBody = 12
};
enum CustomPatternField : int { kKind = 1, kPath = 2 };

// The verb of a pattern field (get, put, post, delete, patch), or empty.
std::string_view verbOf(int field_number) {
  switch (field_number) {
    case kGet: return "GET";
    case kPut: return "PUT";
    case kPost: return "POST";
    case kDelete: return "DELETE";
    case kPatch: return "PATCH";
    default: return {};
  }
}

bool parse(const std::string& bytes, pb::UnknownFieldSet& fields) {
  return fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

// One HttpRule; `nested` receives its additional_bindings (when not null).
bool readRule(const std::string& bytes, WireHttpRule& rule, std::vector<std::string>* nested,
              std::string& error) {
  pb::UnknownFieldSet fields;
  if (!parse(bytes, fields)) {
    error = "the google.api.http option does not parse";
    return false;
  }
  for (int i = 0; i < fields.field_count(); ++i) {
    const pb::UnknownField& f = fields.field(i);
    if (f.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const std::string& value = f.length_delimited();
    if (const std::string_view verb = verbOf(f.number()); !verb.empty()) {
      rule.verb = verb;
      rule.pattern = value;
      continue;
    }
    switch (f.number()) {
      case kBody:
        rule.body = value;
        break;
      case kResponseBody:
        rule.response_body = value;
        break;
      case kCustom: {
        pb::UnknownFieldSet custom;
        if (!parse(value, custom)) {
          error = "a custom pattern does not parse";
          return false;
        }
        for (int k = 0; k < custom.field_count(); ++k) {
          const pb::UnknownField& c = custom.field(k);
          if (c.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) continue;
          if (c.number() == kKind) rule.verb = c.length_delimited();
          if (c.number() == kPath) rule.pattern = c.length_delimited();
        }
        break;
      }
      case kAdditionalBindings:
        if (nested != nullptr) nested->push_back(value);
        break;
      default:
        break;
    }
  }
  if (rule.verb.empty() || rule.pattern.empty()) {
    error = "a google.api.http rule names no verb and path";
    return false;
  }
  return true;
}

}  // namespace

bool readHttpRules(const pb::UnknownFieldSet& method_options, std::vector<WireHttpRule>& rules,
                   std::string& error) {
  for (int i = 0; i < method_options.field_count(); ++i) {
    const pb::UnknownField& f = method_options.field(i);
    if (f.number() != kHttpRuleExtension || f.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    std::vector<std::string> nested;
    WireHttpRule rule;
    if (!readRule(f.length_delimited(), rule, &nested, error)) return false;
    rules.push_back(std::move(rule));
    for (const auto& bytes : nested) {
      WireHttpRule additional;
      if (!readRule(bytes, additional, nullptr, error)) return false;
      rules.push_back(std::move(additional));
    }
  }
  return true;
}

}  // namespace portico::transcode
