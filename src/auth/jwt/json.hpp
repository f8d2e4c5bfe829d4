#pragma once
// The JSON used by JOSE headers, claims and JWK sets, over nlohmann-json. Every function here is
// exception-free for malformed input: nlohmann's throwing entry points (parse with exceptions,
// at(), get<T>() on the wrong type) are kept behind this boundary, so callers on the request
// path can rely on "never throws" (std::bad_alloc aside: out of memory aborts the process).

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace portico::auth::jwt {

using Json = nlohmann::json;

// Parses `text` as one JSON value into `out`. Returns false when `text` is not valid JSON
// (RFC 8259: trailing garbage, invalid UTF-8 and comments included). Duplicate member names keep
// the last value, which is what RFC 7515 §5.2 asks of a parser that does not reject them.
bool parseJson(std::string_view text, Json& out);

// The member `key` of `object`, or nullptr when `object` is not an object or has no such member.
const Json* findMember(const Json& object, std::string_view key);

// The member `key` when it is a string; nullptr when it is absent or of another type.
const std::string* findString(const Json& object, std::string_view key);

// The value of a JSON number as a double (integers of up to 2^53 are exact, which covers every
// NumericDate of this era); nullopt when `value` is not a number.
std::optional<double> numberValue(const Json& value);

}  // namespace portico::auth::jwt
