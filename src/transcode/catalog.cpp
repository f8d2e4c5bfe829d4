#include "transcode/catalog.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/type.pb.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "core/file.hpp"
#include "transcode/catalog_internal.hpp"
#include "transcode/http_rule_wire.hpp"

namespace portico::transcode {
namespace {

class CollectErrors final : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const pb::Message*,
                ErrorLocation, const std::string& message) override {
    if (first.empty()) first = filename + ": " + element_name + ": " + message;
  }
  std::string first;
};

}  // namespace

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

bool takesTextValue(const pb::FieldDescriptor& field) {
  return field.message_type() == nullptr || isWrapperOrStringy(*field.message_type());
}

bool isBoolField(const pb::FieldDescriptor& field) {
  return field.type() == pb::FieldDescriptor::TYPE_BOOL ||
         (field.message_type() != nullptr &&
          field.message_type()->full_name() == "google.protobuf.BoolValue");
}

namespace {

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

}  // namespace

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

}  // namespace portico::transcode
