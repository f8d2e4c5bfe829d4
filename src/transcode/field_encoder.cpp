#include "transcode/field_encoder.hpp"

#include <google/protobuf/descriptor.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

namespace portico::transcode {
namespace {

namespace pb = google::protobuf;

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

void appendVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void appendTag(std::string& out, int number, WireType type) {
  appendVarint(out, (static_cast<uint64_t>(number) << 3) | type);
}

template <typename T>
void appendFixed(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian, as the wire format and x86 both are
  out.append(bytes, sizeof(T));
}

template <typename T>
bool parseInteger(std::string_view text, T& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && !text.empty();
}

bool parseFloating(std::string_view text, double& value) {
  if (text == "NaN") {
    value = std::numeric_limits<double>::quiet_NaN();
  } else if (text == "Infinity") {
    value = std::numeric_limits<double>::infinity();
  } else if (text == "-Infinity") {
    value = -std::numeric_limits<double>::infinity();
  } else {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    return ec == std::errc() && ptr == end && !text.empty() && std::isfinite(value);
  }
  return true;
}

// Parses `text` as a T and appends the field with `write`'s encoding of it.
template <typename T, typename Write>
TextEncoding encodeParsed(std::string_view text, int number, WireType wire, std::string& out,
                          Write write) {
  T value;
  if (!parseInteger(text, value)) return TextEncoding::Unfit;
  appendTag(out, number, wire);
  write(out, value);
  return TextEncoding::Done;
}

TextEncoding encodeInteger(const pb::FieldDescriptor& field, std::string_view text,
                           std::string& out) {
  const int n = field.number();
  // int32 is sign-extended to 64 bits on the wire; sint32/64 are zigzag-coded.
  const auto varint = [](std::string& o, auto v) { appendVarint(o, static_cast<uint64_t>(v)); };
  const auto sign_extended = [](std::string& o, int32_t v) {
    appendVarint(o, static_cast<uint64_t>(static_cast<int64_t>(v)));
  };
  const auto zigzag32 = [](std::string& o, int32_t v) {
    appendVarint(o, (static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31));
  };
  const auto zigzag64 = [](std::string& o, int64_t v) {
    appendVarint(o, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  };
  const auto fixed = [](std::string& o, auto v) { appendFixed(o, v); };
  switch (field.type()) {
    case pb::FieldDescriptor::TYPE_INT32:
      return encodeParsed<int32_t>(text, n, kVarint, out, sign_extended);
    case pb::FieldDescriptor::TYPE_INT64:
      return encodeParsed<int64_t>(text, n, kVarint, out, varint);
    case pb::FieldDescriptor::TYPE_UINT32:
      return encodeParsed<uint32_t>(text, n, kVarint, out, varint);
    case pb::FieldDescriptor::TYPE_UINT64:
      return encodeParsed<uint64_t>(text, n, kVarint, out, varint);
    case pb::FieldDescriptor::TYPE_SINT32:
      return encodeParsed<int32_t>(text, n, kVarint, out, zigzag32);
    case pb::FieldDescriptor::TYPE_SINT64:
      return encodeParsed<int64_t>(text, n, kVarint, out, zigzag64);
    case pb::FieldDescriptor::TYPE_FIXED32:
      return encodeParsed<uint32_t>(text, n, kFixed32, out, fixed);
    case pb::FieldDescriptor::TYPE_SFIXED32:
      return encodeParsed<int32_t>(text, n, kFixed32, out, fixed);
    case pb::FieldDescriptor::TYPE_FIXED64:
      return encodeParsed<uint64_t>(text, n, kFixed64, out, fixed);
    case pb::FieldDescriptor::TYPE_SFIXED64:
      return encodeParsed<int64_t>(text, n, kFixed64, out, fixed);
    default:
      return TextEncoding::NotScalar;
  }
}

}  // namespace

bool isValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    size_t extra = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      ++p;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      min = 0x10000;
    } else
      return false;
    if (static_cast<size_t>(end - p) <= extra) return false;
    uint32_t code = c & (0x3F >> extra);
    for (size_t i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8 (RFC 3629).
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    p += extra + 1;
  }
  return true;
}

TextEncoding encodeTextField(const pb::FieldDescriptor& field, std::string_view text,
                             std::string& out) {
  const int number = field.number();
  switch (field.type()) {
    case pb::FieldDescriptor::TYPE_STRING:
      if (!isValidUtf8(text)) return TextEncoding::Unfit;
      appendTag(out, number, kLength);
      appendVarint(out, text.size());
      out.append(text);
      return TextEncoding::Done;
    case pb::FieldDescriptor::TYPE_BOOL:
      if (text != "true" && text != "false") return TextEncoding::Unfit;
      appendTag(out, number, kVarint);
      out.push_back(text == "true" ? 1 : 0);
      return TextEncoding::Done;
    case pb::FieldDescriptor::TYPE_ENUM: {
      int32_t value = 0;
      if (const auto* named = field.enum_type()->FindValueByName(std::string(text))) {
        value = named->number();
      } else if (!parseInteger(text, value)) {
        return TextEncoding::Unfit;
      }
      appendTag(out, number, kVarint);
      appendVarint(out, static_cast<uint64_t>(static_cast<int64_t>(value)));
      return TextEncoding::Done;
    }
    case pb::FieldDescriptor::TYPE_DOUBLE:
    case pb::FieldDescriptor::TYPE_FLOAT: {
      double v;
      if (!parseFloating(text, v)) return TextEncoding::Unfit;
      if (field.type() == pb::FieldDescriptor::TYPE_DOUBLE) {
        appendTag(out, number, kFixed64);
        appendFixed(out, v);
      } else {
        if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max()) {
          return TextEncoding::Unfit;
        }
        appendTag(out, number, kFixed32);
        appendFixed(out, static_cast<float>(v));
      }
      return TextEncoding::Done;
    }
    case pb::FieldDescriptor::TYPE_BYTES:
    case pb::FieldDescriptor::TYPE_MESSAGE:
    case pb::FieldDescriptor::TYPE_GROUP:
      return TextEncoding::NotScalar;
    default:
      return encodeInteger(field, text, out);
  }
}

void wrapInField(const pb::FieldDescriptor& field, std::string& bytes) {
  std::string head;
  appendTag(head, field.number(), kLength);
  appendVarint(head, bytes.size());
  bytes.insert(0, head);
}

}  // namespace portico::transcode
