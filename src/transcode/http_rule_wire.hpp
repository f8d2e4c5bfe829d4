#pragma once
// The google.api.http option (google/api/annotations.proto: MethodOptions extension 72295728,
// a google.api.HttpRule) read off the wire. Our binary does not link googleapis' protos, so the
// option is among the method options' unknown fields; HttpRule's few fields are read by number.

#include <string>
#include <vector>

namespace google::protobuf {
class UnknownFieldSet;
}

namespace portico::transcode {

struct WireHttpRule {
  std::string verb;  // GET, PUT, POST, DELETE, PATCH, or a custom pattern's kind
  std::string pattern;
  std::string body;
  std::string response_body;
};

inline constexpr int kHttpRuleExtension = 72295728;

// The method's rule and its additional_bindings, in order (none: the method has no rule).
// False with `error` for a rule that names no pattern.
bool readHttpRules(const google::protobuf::UnknownFieldSet& method_options,
                   std::vector<WireHttpRule>& rules, std::string& error);

}  // namespace portico::transcode
