// A transcoded call's messages: the JSON body into the request, the answer into JSON.
#include <nlohmann/json.hpp>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "transcode/catalog_internal.hpp"

namespace portico::transcode {
namespace {

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

bool readVarint(std::string_view& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Whether `wire` holds each field once and in field-number order (a repeated field's elements
// together), nested messages too: as protobuf libraries write a message, and as protobuf's
// printer needs it (it prints fields as they come, so a field sent twice prints twice). Bytes
// that are not are printed after a parse and a serialization, which costs about as much again.
bool isCanonicalWire(const pb::Descriptor& type, std::string_view wire, int depth = 0) {
  if (depth > 32) return false;
  uint64_t last = 0;
  while (!wire.empty()) {
    uint64_t tag = 0;
    if (!readVarint(wire, tag)) return false;
    const uint64_t number = tag >> 3;
    const pb::FieldDescriptor* field =
        number <= INT32_MAX ? type.FindFieldByNumber(static_cast<int>(number)) : nullptr;
    if (number < last || (number == last && (field == nullptr || !field->is_repeated()))) {
      return false;
    }
    last = number;
    uint64_t size = 0;
    switch (tag & 7) {
      case 0:
        if (!readVarint(wire, size)) return false;
        continue;
      case 1: size = 8; break;
      case 5: size = 4; break;
      case 2:
        if (!readVarint(wire, size) || size > wire.size()) return false;
        if (field != nullptr && field->type() == pb::FieldDescriptor::TYPE_MESSAGE &&
            !isCanonicalWire(*field->message_type(), wire.substr(0, size), depth + 1)) {
          return false;
        }
        break;
      default: return false;  // groups
    }
    if (size > wire.size()) return false;
    wire.remove_prefix(size);
  }
  return true;
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
  // Parsed before it is printed: protobuf's printer reads the wire as it comes, and a
  // malformed message could make it loop (a packed field longer than its bytes grew the output
  // without end under the fuzzer).
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
  // The upstream's bytes as they came when they are canonical (nearly always), else the parsed
  // message's.
  const bool as_sent = printed == parsed.get() && isCanonicalWire(type, message);
  const auto status = pb::util::BinaryToJsonString(
      pool_->resolver.get(), type_url,
      as_sent ? std::string(message) : printed->SerializeAsString(), &json, print);
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
