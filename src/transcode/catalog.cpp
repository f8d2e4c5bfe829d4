#include "transcode/catalog.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/type.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "core/file.hpp"
#include "transcode/field_encoder.hpp"
#include "transcode/http_rule_wire.hpp"

namespace portico::transcode {

namespace pb = google::protobuf;

namespace {

constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com";

class CollectErrors final : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const pb::Message*,
                ErrorLocation, const std::string& message) override {
    if (first.empty()) first = filename + ": " + element_name + ": " + message;
  }
  std::string first;
};

// The field of `type` named by its proto name or its JSON name.
const pb::FieldDescriptor* findField(const pb::Descriptor& type, std::string_view name) {
  if (const auto* f = type.FindFieldByName(std::string(name))) return f;
  for (int i = 0; i < type.field_count(); ++i) {
    if (type.field(i)->json_name() == name) return type.field(i);
  }
  return nullptr;
}

bool isWrapperOrStringy(const pb::Descriptor& type) {
  static const std::set<std::string, std::less<>> kStringy = {
      "google.protobuf.Timestamp",   "google.protobuf.Duration",    "google.protobuf.FieldMask",
      "google.protobuf.DoubleValue", "google.protobuf.FloatValue",  "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue"};
  return kStringy.count(type.full_name()) != 0;
}

// The last field of a dotted path through singular messages, or null with `error`.
const pb::FieldDescriptor* resolvePath(const pb::Descriptor& root, std::string_view path,
                                       std::vector<const pb::FieldDescriptor*>& chain,
                                       std::string& error) {
  chain.clear();
  const pb::Descriptor* type = &root;
  while (true) {
    const size_t dot = path.find('.');
    const std::string_view name = path.substr(0, dot);
    const pb::FieldDescriptor* field = type == nullptr ? nullptr : findField(*type, name);
    if (field == nullptr) {
      error = "no field \"" + std::string(name) + "\" in " +
              (type == nullptr ? std::string("a scalar") : type->full_name());
      return nullptr;
    }
    chain.push_back(field);
    if (dot == std::string_view::npos) return field;
    if (field->is_repeated() || field->message_type() == nullptr) {
      error = "field \"" + field->name() + "\" of " + type->full_name() +
              " is not a singular message, so it cannot hold \"" +
              std::string(path.substr(dot + 1)) + "\"";
      return nullptr;
    }
    type = field->message_type();
    path = path.substr(dot + 1);
  }
}

// Whether a path or query value can set this field (a scalar, an enum, or a message whose JSON
// form is a string or a number).
bool takesTextValue(const pb::FieldDescriptor& field) {
  return field.message_type() == nullptr || isWrapperOrStringy(*field.message_type());
}

bool isBoolField(const pb::FieldDescriptor& field) {
  return field.type() == pb::FieldDescriptor::TYPE_BOOL ||
         (field.message_type() != nullptr &&
          field.message_type()->full_name() == "google.protobuf.BoolValue");
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes; `plus_is_space` for query strings. (A path never holds %2F here: the
// gateway refuses it before routing, so a multi-segment variable has no slash to keep encoded.)
std::string percentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < in.size() && hexDigit(in[i + 1]) >= 0 &&
               hexDigit(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexDigit(in[i + 1]) * 16 + hexDigit(in[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

pb::util::JsonPrintOptions printOptions(const JsonOptions& options) {
  pb::util::JsonPrintOptions print;
  print.preserve_proto_field_names = options.preserve_proto_field_names;
  print.always_print_primitive_fields = options.always_print_primitive_fields;
  return print;
}

bool isBlank(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

}  // namespace

// The pool's message and enum types as google.protobuf.Type, converted once at load: protobuf's
// resolver converts a descriptor on every call, which was a quarter of a transcoded call's CPU.
// Read-only after load, so the workers share it without a lock.
class CachedTypeResolver final : public pb::util::TypeResolver {
 public:
  explicit CachedTypeResolver(const pb::DescriptorPool& pool)
      : inner_(pb::util::NewTypeResolverForDescriptorPool(std::string(kTypeUrlPrefix), &pool)) {}

  void add(const pb::Descriptor& message) {
    pb::Type type;
    if (inner_->ResolveMessageType(urlOf(message.full_name()), &type).ok()) {
      messages_.emplace(urlOf(message.full_name()), std::move(type));
    }
    for (int i = 0; i < message.nested_type_count(); ++i) add(*message.nested_type(i));
    for (int i = 0; i < message.enum_type_count(); ++i) add(*message.enum_type(i));
  }
  void add(const pb::EnumDescriptor& enumeration) {
    pb::Enum type;
    if (inner_->ResolveEnumType(urlOf(enumeration.full_name()), &type).ok()) {
      enums_.emplace(urlOf(enumeration.full_name()), std::move(type));
    }
  }

  pb::util::Status ResolveMessageType(const std::string& type_url, pb::Type* type) override {
    if (auto it = messages_.find(type_url); it != messages_.end()) {
      type->CopyFrom(it->second);
      return pb::util::Status();
    }
    return inner_->ResolveMessageType(type_url, type);
  }
  pb::util::Status ResolveEnumType(const std::string& type_url, pb::Enum* type) override {
    if (auto it = enums_.find(type_url); it != enums_.end()) {
      type->CopyFrom(it->second);
      return pb::util::Status();
    }
    return inner_->ResolveEnumType(type_url, type);
  }

 private:
  static std::string urlOf(const std::string& full_name) {
    return std::string(kTypeUrlPrefix) + "/" + full_name;
  }
  std::unique_ptr<pb::util::TypeResolver> inner_;
  std::unordered_map<std::string, pb::Type> messages_;
  std::unordered_map<std::string, pb::Enum> enums_;
};

struct Catalog::Pool {
  pb::DescriptorPool pool;
  pb::DynamicMessageFactory factory{&pool};
  std::unique_ptr<pb::util::TypeResolver> resolver;
  std::vector<const pb::MethodDescriptor*> methods;  // by Method index
  // Each method's request and response prototypes, made at load: the factory takes a lock per
  // lookup.
  std::vector<const pb::Message*> requests;
  std::vector<const pb::Message*> responses;
};

Catalog::Catalog() : pool_(std::make_unique<Pool>()) {}
Catalog::~Catalog() = default;

namespace {

// Builds the set's files into `pool`, each after its dependencies (a set need not be ordered).
bool buildFiles(const pb::FileDescriptorSet& set, pb::DescriptorPool& pool, std::string& error) {
  std::map<std::string, const pb::FileDescriptorProto*> by_name;
  for (const auto& file : set.file()) by_name.emplace(file.name(), &file);
  std::set<std::string> building;
  CollectErrors errors;
  std::function<bool(const pb::FileDescriptorProto&)> build =
      [&](const pb::FileDescriptorProto& file) -> bool {
    if (pool.FindFileByName(file.name()) != nullptr) return true;
    if (!building.insert(file.name()).second) {
      error = "import cycle through " + file.name();
      return false;
    }
    for (const auto& dependency : file.dependency()) {
      auto it = by_name.find(dependency);
      if (it == by_name.end()) {
        error = file.name() + " imports " + dependency +
                ", which the set lacks (build it with protoc --include_imports)";
        return false;
      }
      if (!build(*it->second)) return false;
    }
    if (pool.BuildFileCollectingErrors(file, &errors) == nullptr) {
      error = errors.first.empty() ? "cannot build " + file.name() : errors.first;
      return false;
    }
    return true;
  };
  for (const auto& file : set.file()) {
    if (!build(file)) return false;
  }
  return true;
}

// A rule's checks against the method's types: its variables, body and response_body.
bool checkRule(const HttpRule& rule, const pb::MethodDescriptor& method, std::string& error) {
  std::vector<const pb::FieldDescriptor*> chain;
  for (size_t i = 0; i < rule.path.variableCount(); ++i) {
    const auto* field = resolvePath(*method.input_type(), rule.path.fieldPath(i), chain, error);
    if (field == nullptr) return false;
    if (field->is_repeated() || !takesTextValue(*field)) {
      error = "path variable {" + std::string(rule.path.fieldPath(i)) +
              "} must name a singular scalar field";
      return false;
    }
  }
  if (rule.body == HttpRule::Body::Field &&
      method.input_type()->FindFieldByName(rule.body_field) == nullptr) {
    error =
        "body \"" + rule.body_field + "\" is not a field of " + method.input_type()->full_name();
    return false;
  }
  if (!rule.response_body.empty() &&
      method.output_type()->FindFieldByName(rule.response_body) == nullptr) {
    error = "response_body \"" + rule.response_body + "\" is not a field of " +
            method.output_type()->full_name();
    return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const Catalog> Catalog::load(const std::string& path,
                                             std::span<const std::string> services,
                                             std::string& error) {
  // protobuf logs to stderr what an upstream's message does wrong (a string that is not
  // UTF-8, ...): one line per message, which an upstream could make a flood. Its answers'
  // failures are the client's error and the access log's status instead.
  static std::once_flag quiet;
  std::call_once(quiet, [] { pb::SetLogHandler(nullptr); });
  std::string data;
  if (int err = readWholeFile(path, data); err != 0) {
    error = "cannot read " + path + ": " + std::strerror(err);
    return nullptr;
  }
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(data) || set.file_size() == 0) {
    error = path +
            " is not a descriptor set (make it with protoc --include_imports "
            "--descriptor_set_out)";
    return nullptr;
  }
  std::shared_ptr<Catalog> catalog(new Catalog());
  Pool& pool = *catalog->pool_;
  if (!buildFiles(set, pool.pool, error)) {
    error = path + ": " + error;
    return nullptr;
  }
  auto resolver = std::make_unique<CachedTypeResolver>(pool.pool);
  for (const auto& file_proto : set.file()) {
    const pb::FileDescriptor* file = pool.pool.FindFileByName(file_proto.name());
    for (int i = 0; i < file->message_type_count(); ++i) resolver->add(*file->message_type(i));
    for (int i = 0; i < file->enum_type_count(); ++i) resolver->add(*file->enum_type(i));
  }
  pool.resolver = std::move(resolver);
  std::set<std::string, std::less<>> wanted(services.begin(), services.end());
  for (const auto& name : wanted) {
    if (pool.pool.FindServiceByName(name) == nullptr) {
      error = path + ": no service \"" + name + "\" in the descriptor set";
      return nullptr;
    }
  }
  for (const auto& file_proto : set.file()) {
    const pb::FileDescriptor* file = pool.pool.FindFileByName(file_proto.name());
    for (int s = 0; s < file->service_count(); ++s) {
      const pb::ServiceDescriptor* service = file->service(s);
      if (!wanted.empty() && wanted.count(service->full_name()) == 0) continue;
      for (int m = 0; m < service->method_count(); ++m) {
        const pb::MethodDescriptor* descriptor = service->method(m);
        Method method;
        method.full_name = descriptor->full_name();
        method.grpc_path = "/" + service->full_name() + "/" + descriptor->name();
        method.request_url =
            std::string(kTypeUrlPrefix) + "/" + descriptor->input_type()->full_name();
        method.response_url =
            std::string(kTypeUrlPrefix) + "/" + descriptor->output_type()->full_name();
        method.server_streaming = descriptor->server_streaming();
        method.client_streaming = descriptor->client_streaming();
        const size_t index = catalog->methods_.size();
        std::vector<WireHttpRule> wire_rules;
        if (!readHttpRules(descriptor->options().unknown_fields(), wire_rules, error)) {
          error = path + ": " + method.full_name + ": " + error;
          return nullptr;
        }
        for (auto& wire : wire_rules) {
          HttpRule rule;
          std::string problem;
          auto parsed = PathTemplate::parse(wire.pattern, problem);
          if (!parsed) {
            error = path + ": " + method.full_name + ": path \"" + wire.pattern + "\": " + problem;
            return nullptr;
          }
          rule.verb = std::move(wire.verb);
          rule.path = std::move(*parsed);
          rule.body = wire.body.empty()  ? HttpRule::Body::None
                      : wire.body == "*" ? HttpRule::Body::Whole
                                         : HttpRule::Body::Field;
          if (rule.body == HttpRule::Body::Field) rule.body_field = wire.body;
          rule.response_body = std::move(wire.response_body);
          rule.method = index;
          if (method.client_streaming) {
            error = path + ": " + method.full_name +
                    ": a client-streaming method cannot be transcoded from REST";
            return nullptr;
          }
          if (!checkRule(rule, *descriptor, problem)) {
            error = path + ": " + method.full_name + ": " + problem;
            return nullptr;
          }
          catalog->rules_.push_back(std::move(rule));
        }
        catalog->methods_.push_back(std::move(method));
        pool.methods.push_back(descriptor);
        pool.requests.push_back(pool.factory.GetPrototype(descriptor->input_type()));
        pool.responses.push_back(pool.factory.GetPrototype(descriptor->output_type()));
      }
    }
  }
  if (catalog->methods_.empty()) {
    error = path + ": the descriptor set has no service";
    return nullptr;
  }
  return catalog;
}

const Method* Catalog::methodAt(std::string_view grpc_path) const {
  for (const Method& method : methods_) {
    if (method.grpc_path == grpc_path) return &method;
  }
  return nullptr;
}

std::optional<RuleMatch> Catalog::match(std::string_view verb, std::string_view path) const {
  RuleMatch result;
  for (const HttpRule& rule : rules_) {
    if (rule.verb != verb) continue;
    if (rule.path.match(path, result.bindings)) {
      result.rule = &rule;
      result.method = &methods_[rule.method];
      return result;
    }
  }
  return std::nullopt;
}

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
          eq == std::string_view::npos ? std::string() : percentDecode(pair.substr(eq + 1), true);
      if (!binder.set(percentDecode(pair.substr(0, eq), true), std::move(value), false, error)) {
        return false;
      }
    }
  }
  for (const auto& binding : match.bindings) {
    if (!binder.set(binding.field_path, percentDecode(binding.value, false), true, error)) {
      return false;
    }
  }
  return binder.finish(pool_->resolver.get(), methods_[match.rule->method].request_url, bound,
                       error);
}

namespace {

// Clears in `body` what `bound` sets as a whole: repeated fields and message-typed values
// (Timestamp, wrappers, ...), going down through the plain messages both set, so that merging
// `bound` afterwards replaces those values instead of adding to them.
void clearWhatIsReplaced(pb::Message& body, const pb::Message& bound) {
  const pb::Reflection& reflection = *bound.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection.ListFields(bound, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    const pb::Descriptor* type = field->message_type();
    if (field->is_repeated() || (type != nullptr && isWrapperOrStringy(*type))) {
      body.GetReflection()->ClearField(&body, field);
    } else if (type != nullptr && body.GetReflection()->HasField(body, field)) {
      clearWhatIsReplaced(*body.GetReflection()->MutableMessage(&body, field),
                          reflection.GetMessage(bound, field));
    }
  }
}

}  // namespace

bool Catalog::bodyToMessage(const HttpRule& rule, std::string_view body, const BoundFields& bound,
                            std::string& message, std::string& error) const {
  message.clear();
  if (isBlank(body)) {
    message = bound.message;
    return true;
  }
  if (rule.body == HttpRule::Body::None) {
    error = "this method takes no request body";
    return false;
  }
  // Checked whole before anything is made of it: a named field's body is spliced into an
  // object, which must not let a malformed body set other fields.
  if (!nlohmann::json::accept(body)) {
    error = "the request body is not valid JSON";
    return false;
  }
  std::string wrapped;
  if (rule.body == HttpRule::Body::Field) {
    wrapped.reserve(body.size() + rule.body_field.size() + 8);
    wrapped.append("{\"").append(rule.body_field).append("\":").append(body).append("}");
    body = wrapped;
  }
  pb::util::JsonParseOptions parse;
  const auto status =
      pb::util::JsonToBinaryString(pool_->resolver.get(), methods_[rule.method].request_url,
                                   pb::StringPiece(body.data(), body.size()), &message, parse);
  if (!status.ok()) {
    error = "the request body does not fit " +
            methods_[rule.method].request_url.substr(kTypeUrlPrefix.size() + 1) + ": " +
            status.message().ToString();
    return false;
  }
  if (!bound.replaces_whole_fields) {
    // Wire-format messages merge by concatenation, the later value of a scalar winning.
    message.append(bound.message);
    return true;
  }
  const pb::Message& prototype = *pool_->requests[rule.method];
  std::unique_ptr<pb::Message> merged(prototype.New());
  std::unique_ptr<pb::Message> overrides(prototype.New());
  if (!merged->ParseFromString(message) || !overrides->ParseFromString(bound.message)) {
    error = "the request does not make a valid message";
    return false;
  }
  clearWhatIsReplaced(*merged, *overrides);
  merged->MergeFrom(*overrides);
  message = merged->SerializeAsString();
  return true;
}

bool Catalog::messageToJson(const HttpRule& rule, std::string_view message,
                            const JsonOptions& options, std::string& json,
                            std::string& error) const {
  const pb::Descriptor& type = *pool_->methods[rule.method]->output_type();
  // Parsed before it is printed: protobuf's printer reads the wire as it comes, so a malformed
  // message could make it loop (a packed field longer than its bytes grew the output without
  // end under the fuzzer), and a field sent twice would print twice. Parsing checks it and
  // serializing gives the canonical bytes.
  std::unique_ptr<pb::Message> parsed(pool_->responses[rule.method]->New());
  if (!parsed->ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    error = "the upstream's message does not parse as " + type.full_name();
    return false;
  }
  const pb::Message* printed = parsed.get();
  const pb::FieldDescriptor* field = nullptr;
  if (!rule.response_body.empty()) {
    field = type.FindFieldByName(rule.response_body);
    if (field->message_type() != nullptr && !field->is_repeated()) {
      printed = &parsed->GetReflection()->GetMessage(*parsed, field);  // converted alone
      field = nullptr;
    }
  }
  const std::string type_url =
      std::string(kTypeUrlPrefix) + "/" + printed->GetDescriptor()->full_name();
  auto print = printOptions(options);
  // A scalar response_body is taken out of the printed message: it must be there at its
  // default value too (0, "", false, []).
  if (field != nullptr) print.always_print_primitive_fields = true;
  json.clear();
  const auto status = pb::util::BinaryToJsonString(pool_->resolver.get(), type_url,
                                                   printed->SerializeAsString(), &json, print);
  if (!status.ok()) {
    error = "the upstream's message does not convert: " + status.message().ToString();
    return false;
  }
  if (field != nullptr) {
    // A scalar or repeated response_body: taken out of the whole message's JSON.
    auto whole = nlohmann::json::parse(json, nullptr, false);
    const std::string& key =
        options.preserve_proto_field_names ? field->name() : field->json_name();
    json = whole.is_object() && whole.contains(key)
               ? whole[key].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
           : field->is_repeated() ? std::string("[]")
                                  : std::string("null");
  }
  return true;
}

}  // namespace portico::transcode
