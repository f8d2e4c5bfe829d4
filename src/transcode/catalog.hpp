#pragma once
// A grpc_services entry, read at load: the descriptor set's services, their methods and
// google.api.http rules, and the proto3 JSON conversions of their messages (protobuf's own,
// through a TypeResolver over the set's DescriptorPool). Immutable once loaded, shared by the
// workers; protobuf's headers stay in catalog.cpp.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "transcode/path_template.hpp"

namespace portico::transcode {

struct Method {
  std::string full_name;    // example.v1.Library.GetBook
  std::string grpc_path;    // /example.v1.Library/GetBook
  std::string request_url;  // type.googleapis.com/example.v1.GetBookRequest
  std::string response_url;
  bool server_streaming = false;
  bool client_streaming = false;
};

struct HttpRule {
  enum class Body : uint8_t { None, Whole, Field };
  std::string verb;  // GET, POST, ... or a custom kind
  PathTemplate path;
  Body body = Body::None;
  std::string body_field;     // Body::Field: the request's field, its proto name
  std::string response_body;  // the response's field sent as the body; empty: the message
  size_t method = 0;          // index into Catalog::methods()
};

// How JSON is printed and what is forgiven (a route's `grpc:` options).
struct JsonOptions {
  bool preserve_proto_field_names = false;
  bool always_print_primitive_fields = false;
  bool ignore_unknown_query_parameters = false;
};

// A request matched to a rule: its bindings are views into the rule and the request path.
struct RuleMatch {
  const HttpRule* rule = nullptr;
  const Method* method = nullptr;
  std::vector<PathTemplate::Binding> bindings;
};

// One field set from the path or the query, decoded (for `portico explain`).
struct FieldValue {
  std::string field_path;
  std::string value;
  bool from_path = false;
};

// What a request's path and query set, as the request message's wire bytes.
struct BoundFields {
  std::string message;
  // Some of it is a repeated or message field: appending the bytes to the body's would merge
  // the two values instead of replacing the body's.
  bool replaces_whole_fields = false;
};

class Catalog {
 public:
  // Reads a descriptor set (protoc --include_imports --descriptor_set_out). `services` limits
  // it to those (full names; empty: all). Null with `error` when it cannot be used.
  static std::shared_ptr<const Catalog> load(const std::string& path,
                                             std::span<const std::string> services,
                                             std::string& error);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  const std::vector<Method>& methods() const { return methods_; }
  const std::vector<HttpRule>& rules() const { return rules_; }
  // The method served at a gRPC path (/package.Service/Method), or null.
  const Method* methodAt(std::string_view grpc_path) const;
  // The first rule whose verb and template match.
  std::optional<RuleMatch> match(std::string_view verb, std::string_view path) const;

  // The fields a match and a query set, decoded and checked against the request type. False
  // with `error` (a 400) when a value does not fit its field or a parameter names none.
  bool bindFields(const RuleMatch& match, std::string_view query, const JsonOptions& options,
                  BoundFields& bound, std::string& error,
                  std::vector<FieldValue>* explained = nullptr) const;
  // The request message: the JSON body's fields, then the bound ones, which win (a repeated or
  // message field bound by the path or query replaces the body's, rather than merging with
  // it). False with `error` (a 400) on malformed JSON, a value of the wrong type or an unknown
  // field.
  bool bodyToMessage(const HttpRule& rule, std::string_view body, const BoundFields& bound,
                     std::string& message, std::string& error) const;
  // A response message as JSON (its response_body field alone when the rule names one).
  bool messageToJson(const HttpRule& rule, std::string_view message, const JsonOptions& options,
                     std::string& json, std::string& error) const;

 private:
  struct Pool;
  Catalog();
  std::unique_ptr<Pool> pool_;
  std::vector<Method> methods_;
  std::vector<HttpRule> rules_;
};

}  // namespace portico::transcode
