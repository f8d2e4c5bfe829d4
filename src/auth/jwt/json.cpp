#include "auth/jwt/json.hpp"

namespace portico::auth::jwt {

bool parseJson(std::string_view text, Json& out) {
  // allow_exceptions = false: a parse error yields a "discarded" value instead of a throw.
  out = Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) {
    out = Json();
    return false;
  }
  return true;
}

const Json* findMember(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

const std::string* findString(const Json& object, std::string_view key) {
  const Json* member = findMember(object, key);
  if (member == nullptr || !member->is_string()) return nullptr;
  return member->get_ptr<const std::string*>();
}

std::optional<double> numberValue(const Json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) {
    return static_cast<double>(value.get<int64_t>());
  }
  if (value.is_number_unsigned()) return static_cast<double>(value.get<uint64_t>());
  if (value.is_number_float()) return value.get<double>();
  return std::nullopt;
}

}  // namespace portico::auth::jwt
