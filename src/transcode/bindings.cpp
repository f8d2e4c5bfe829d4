// A REST request's path and query values made into its gRPC request's fields.
#include <nlohmann/json.hpp>

#include <google/protobuf/util/json_util.h>

#include "http/path.hpp"
#include "transcode/catalog_internal.hpp"
#include "transcode/field_encoder.hpp"

namespace portico::transcode {
namespace {

// The fields a request's path and query set. Scalars are encoded straight from their text;
// message-typed values (Timestamp, wrappers, ...) go through protobuf's JSON parser, once, as
// one JSON object. Later values of a field win over earlier ones (the path is bound last).
class FieldBinder {
 public:
  FieldBinder(const pb::Descriptor& root, const JsonOptions& options,
              std::vector<FieldValue>* explained)
      : root_(root), options_(options), explained_(explained) {}

  bool set(std::string_view field_path, std::string value, bool from_path, std::string& error) {
    if (!isValidUtf8(field_path)) {  // (never echoed: the error body is JSON)
      if (options_.ignore_unknown_query_parameters) return true;
      error = "a query parameter's name is not UTF-8";
      return false;
    }
    std::string problem;
    const pb::FieldDescriptor* field = resolvePath(root_, field_path, chain_, problem);
    if (field == nullptr || !takesTextValue(*field)) {
      if (options_.ignore_unknown_query_parameters && !from_path) return true;
      error = field == nullptr ? "unknown query parameter \"" + std::string(field_path) + "\""
                               : "query parameter \"" + std::string(field_path) +
                                     "\" names a message, not a value";
      return false;
    }
    if (!isValidUtf8(value)) {
      error = "the value of \"" + std::string(field_path) + "\" is not UTF-8";
      return false;
    }
    if (explained_ != nullptr) explained_->push_back({std::string(field_path), value, from_path});
    if (field->is_repeated() || field->message_type() != nullptr) replaces_whole_fields_ = true;
    std::string bytes;
    switch (encodeTextField(*field, value, bytes)) {
      case TextEncoding::Done:
        for (auto link = chain_.rbegin() + 1; link != chain_.rend(); ++link) {
          wrapInField(**link, bytes);
        }
        scalars_.append(bytes);
        return true;
      case TextEncoding::Unfit:
        error = "a path or query value does not fit its field: \"" + value + "\" is not a " +
                field->type_name() + " (" + std::string(field_path) + ")";
        return false;
      case TextEncoding::NotScalar:
        break;
    }
    nlohmann::json* at = &messages_;
    for (const auto* link : chain_) {
      // A parameter may name what an earlier one set as a value (b=... then b.value=...):
      // indexing a JSON string would throw, so that is the client's conflict, a 400.
      if (!at->is_object() && !at->is_null()) {
        error = "query parameters set \"" + std::string(field_path) + "\" and a field inside it";
        return false;
      }
      at = &(*at)[link->name()];
    }
    nlohmann::json item;
    if (isBoolField(*field) && (value == "true" || value == "false")) {
      item = value == "true";
    } else {
      item = std::move(value);
    }
    if (field->is_repeated()) {
      if (!at->is_array()) *at = nlohmann::json::array();
      at->push_back(std::move(item));
    } else {
      *at = std::move(item);
    }
    return true;
  }

  bool finish(pb::util::TypeResolver* resolver, const std::string& type_url, BoundFields& bound,
              std::string& error) {
    bound.replaces_whole_fields = replaces_whole_fields_;
    std::string& message = bound.message;
    message = std::move(scalars_);
    if (messages_.empty()) return true;
    std::string bytes;
    const auto status = pb::util::JsonToBinaryString(
        resolver, type_url,
        messages_.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), &bytes,
        pb::util::JsonParseOptions());
    if (!status.ok()) {
      error = "a path or query value does not fit its field: " + status.message().ToString();
      return false;
    }
    message.append(bytes);
    return true;
  }

 private:
  const pb::Descriptor& root_;
  const JsonOptions& options_;
  std::vector<FieldValue>* explained_;
  std::vector<const pb::FieldDescriptor*> chain_;
  std::string scalars_;
  nlohmann::json messages_ = nlohmann::json::object();
  bool replaces_whole_fields_ = false;
};

}  // namespace

bool Catalog::bindFields(const RuleMatch& match, std::string_view query, const JsonOptions& options,
                         BoundFields& bound, std::string& error,
                         std::vector<FieldValue>* explained) const {
  FieldBinder binder(*pool_->methods[match.rule->method]->input_type(), options, explained);
  if (match.rule->body == HttpRule::Body::Whole && !options.ignore_unknown_query_parameters &&
      !query.empty()) {
    error = "this method takes every field from the body: no query parameter is allowed";
    return false;
  }
  // With body "*" and the option, parameters are ignored: they have no field left to set.
  if (match.rule->body != HttpRule::Body::Whole) {
    while (!query.empty()) {
      const size_t amp = query.find('&');
      const std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (pair.empty()) continue;
      const size_t eq = pair.find('=');
      std::string value =
          eq == std::string_view::npos ? std::string() : http::percentDecode(pair.substr(eq + 1), true);
      if (!binder.set(http::percentDecode(pair.substr(0, eq), true), std::move(value), false, error)) {
        return false;
      }
    }
  }
  for (const auto& binding : match.bindings) {
    if (!binder.set(binding.field_path, http::percentDecode(binding.value, false), true, error)) {
      return false;
    }
  }
  return binder.finish(pool_->resolver.get(), methods_[match.rule->method].request_url, bound,
                       error);
}

}  // namespace portico::transcode
