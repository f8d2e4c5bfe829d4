#pragma once
// base64url (RFC 4648 §5) as JWS uses it (RFC 7515 §2): no '=' padding, no whitespace, and only
// canonical text, so that one byte string has exactly one encoding and a token cannot be
// altered (e.g. to dodge a cache or a deny list keyed on the token) without changing its bytes.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace portico::auth::jwt {

// The number of bytes that `encoded_len` characters decode to (valid lengths only).
constexpr size_t base64UrlDecodedSize(size_t encoded_len) {
  return encoded_len / 4 * 3 + (encoded_len % 4 == 0 ? 0 : encoded_len % 4 - 1);
}

// Decodes `in` into `out`, replacing its contents (its capacity is reused, so a caller that keeps
// the buffer decodes without allocating). Returns false, leaving `out` unspecified, when `in`
// holds '=' padding, a character outside [A-Za-z0-9_-], has a length with len % 4 == 1 (no byte
// string encodes to that), or sets bits in its last character that encode nothing (RFC 4648
// §3.5 lets decoders reject these). Throws only std::bad_alloc.
bool base64UrlDecode(std::string_view in, std::string& out);
std::optional<std::string> base64UrlDecode(std::string_view in);

// Encodes without padding. Used to build tokens in tests and tools.
std::string base64UrlEncode(std::string_view bytes);

}  // namespace portico::auth::jwt
