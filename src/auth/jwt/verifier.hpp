#pragma once
// Verification of JWTs (RFC 7519) in JWS compact serialization (RFC 7515 §7.1), for the auth
// filter on the request path: verify() never throws (out of memory aborts the process), leaves
// nothing on OpenSSL's error queue, and allocates only for the decoded parts and the parsed
// JSON. Only the keys of the KeySet are trusted: "jwk", "jku", "x5u" and "x5c" header
// parameters are never used to find a key.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt/json.hpp"
#include "auth/jwt/jwk.hpp"

namespace portico::auth::jwt {

enum class VerifyStatus : uint8_t {
  Ok,
  Malformed,       // not three dot-separated parts; a header or claim member of the wrong type
  BadBase64,       // a part is not unpadded, canonical base64url
  BadJson,         // the header or the payload is not JSON
  NotAnObject,     // the header or the payload is JSON but not an object
  AlgNone,         // "alg": "none" (RFC 7518 §3.6), refused whatever the policy says
  AlgNotAllowed,   // an alg this verifier does not know or the policy does not list
  AlgKeyMismatch,  // no candidate key may be used with the token's alg
  UnknownKid,      // the token names a kid the key set does not hold
  BadSignature,
  Expired,         // exp (RFC 7519 §4.1.4)
  NotYetValid,     // nbf (RFC 7519 §4.1.5)
  IssuedInFuture,  // iat (RFC 7519 §4.1.6)
  WrongIssuer,     // iss (RFC 7519 §4.1.1)
  WrongAudience,   // aud (RFC 7519 §4.1.3)
  MissingExp,      // the policy requires exp and the token has none
  TooLarge,        // longer than VerifyPolicy::max_token_bytes
};

// The enum value's name, e.g. "BadSignature", for logs and metrics labels.
const char* statusName(VerifyStatus status);

struct VerifyPolicy {
  // The algorithms accepted (SPEC §3 `algorithms`). Empty accepts nothing.
  std::vector<Alg> algorithms;
  // When set, "iss" must be a string equal to it (case-sensitive, RFC 7519 §4.1.1).
  std::optional<std::string> issuer;
  // When not empty, "aud" (a string or an array of strings) must name at least one of these.
  std::vector<std::string> audiences;
  // Clock skew allowed on exp, nbf and iat (RFC 7519 §4.1.4 "some small leeway").
  std::chrono::seconds leeway{0};
  bool require_exp = true;
  size_t max_token_bytes = 16 * 1024;

  bool allows(Alg alg) const;
};

struct VerifyResult {
  VerifyStatus status = VerifyStatus::Malformed;
  // A short, static, client-safe explanation (e.g. "token expired"); never null.
  const char* reason = "";
  // The JOSE header, set once it has been parsed (also on most failures, for logging its kid).
  Json header;
  // The claims; set only when status == Ok.
  Json claims;

  bool ok() const { return status == VerifyStatus::Ok; }
};

// Verifies `token` (the compact serialization, without "Bearer ") against `keys` under
// `policy` at time `now` (seconds since the Unix epoch). Checks, in order: size; structure;
// header (a JSON object with a string "alg", no "crit", RFC 7515 §4.1.11); alg (never "none",
// listed in the policy); the key (RFC 7515 §4.1.4 "kid": keys with that kid and keys without a
// kid are candidates, as in Envoy's jwt_authn; without a "kid" every key is; only candidates
// whose type fits the alg are tried, see Key::mismatch); the signature; then the payload (a JSON
// object) and its exp, nbf, iat, iss and aud claims. The payload is parsed only once the
// signature holds, so forged tokens cost no JSON parsing of attacker-chosen claims.
VerifyResult verify(std::string_view token, const KeySet& keys, const VerifyPolicy& policy,
                    int64_t now) noexcept;

// The signature check alone (RFC 7515 §5.2 step 8): `signing_input` is the ASCII
// "<header>.<payload>" as it appears in the token, `signature` the decoded signature bytes.
// False when `key` may not be used with `alg` (Key::mismatch) or the signature does not verify.
bool verifySignature(Alg alg, const Key& key, std::string_view signing_input,
                     std::string_view signature) noexcept;

}  // namespace portico::auth::jwt
