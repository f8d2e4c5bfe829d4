#pragma once
// What the transcoder's .cpp files share about a Catalog's protobuf side: the pool, the
// prototypes and the resolver, and the field lookups. protobuf's headers stop here: nothing
// outside src/transcode includes this.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/type_resolver.h>

#include <memory>
#include <string_view>
#include <vector>

#include "transcode/catalog.hpp"

namespace portico::transcode {

namespace pb = google::protobuf;

inline constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com";

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

// The field of `type` named by its proto name or its JSON name.
const pb::FieldDescriptor* findField(const pb::Descriptor& type, std::string_view name);
// The well-known types whose JSON form is a string or a number (Timestamp, wrappers, ...).
bool isWrapperOrStringy(const pb::Descriptor& type);
// The last field of a dotted path through singular messages, or null with `error`; `chain`
// gets every field on the way.
const pb::FieldDescriptor* resolvePath(const pb::Descriptor& root, std::string_view path,
                                       std::vector<const pb::FieldDescriptor*>& chain,
                                       std::string& error);
// Whether a path or query value can set this field (a scalar, an enum, or a message whose JSON
// form is a string or a number).
bool takesTextValue(const pb::FieldDescriptor& field);
bool isBoolField(const pb::FieldDescriptor& field);

}  // namespace portico::transcode
