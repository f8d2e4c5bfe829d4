#pragma once
// Path and query values as protobuf wire bytes, straight from the field's descriptor: the values
// of a REST request are text, and most fields they set are scalars, for which going through
// protobuf's JSON parser (as message-typed values still do) costs more than the whole relay.

#include <string>
#include <string_view>

namespace google::protobuf {
class FieldDescriptor;
}

namespace portico::transcode {

enum class TextEncoding : unsigned char {
  Done,       // appended to `out`
  Unfit,      // the text is not a value of the field's type
  NotScalar,  // a message or bytes field: its JSON form is the way in
};

// Appends one occurrence of `field` holding `text` (decimal numbers, true/false, an enum's name
// or number, UTF-8 text) to `out`.
TextEncoding encodeTextField(const google::protobuf::FieldDescriptor& field, std::string_view text,
                             std::string& out);
// Makes `bytes` (fields of a message) into one occurrence of the message field `field`.
void wrapInField(const google::protobuf::FieldDescriptor& field, std::string& bytes);
bool isValidUtf8(std::string_view text);

}  // namespace portico::transcode
