#pragma once
// JSON Web Keys (RFC 7517) for verifying JWS signatures (RFC 7515, algorithms of RFC 7518 and
// RFC 8037). Parsing runs at load or JWKS refresh time and may allocate; a parsed Key or KeySet
// is immutable afterwards, safe to read from every worker at once (share it as
// std::shared_ptr<const KeySet>). Only public keys are loaded: private members of a JWK ("d",
// "p", ...) are ignored, and so are certificate chains ("x5c"), which are never trusted here.

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt/json.hpp"

namespace portico::auth::jwt {

// The JWS algorithms Portico verifies (RFC 7518 §3.1, RFC 8037 §3.1). "none" is not one of them.
enum class Alg : uint8_t {
  HS256, HS384, HS512,  // HMAC with SHA-2, oct keys
  RS256, RS384, RS512,  // RSASSA-PKCS1-v1_5, RSA keys
  PS256, PS384, PS512,  // RSASSA-PSS, RSA keys
  ES256, ES384, ES512,  // ECDSA on P-256 / P-384 / P-521
  EdDSA,                // Ed25519 (OKP keys)
};

// Case-sensitive, as "alg" values are (RFC 7515 §4.1.1). nullopt for anything else.
std::optional<Alg> parseAlg(std::string_view name);
const char* algName(Alg alg);

enum class KeyType : uint8_t { Oct, Rsa, Ec, Okp };
enum class Curve : uint8_t { None, P256, P384, P521, Ed25519 };

class Key {
 public:
  // A symmetric key for HS256/384/512 from its raw bytes (e.g. the UTF-8 of a configured secret).
  static Key fromSecret(std::string_view bytes, std::string kid = {},
                        std::optional<Alg> alg = std::nullopt);

  // Parses one JWK object. On failure returns nullopt and sets `error` to a short reason.
  // Accepted: kty RSA (n, e; modulus of 2048 to 16384 bits, RFC 7518 §3.3), EC (crv P-256,
  // P-384 or P-521, x and y of the full coordinate size, the point checked to be on the curve),
  // OKP (crv Ed25519, x of 32 bytes) and oct (k). "kid", "alg", "use" and "key_ops" must be of
  // their RFC 7517 §4 types when present; an "alg" must be one this key type can verify.
  static std::optional<Key> fromJwk(const Json& jwk, std::string& error);
  static std::optional<Key> fromJwkText(std::string_view json_text, std::string& error);

  Key(Key&&) noexcept = default;
  Key& operator=(Key&&) noexcept = default;
  ~Key();  // wipes a secret

  KeyType type() const { return type_; }
  Curve curve() const { return curve_; }  // None for RSA and oct keys
  const std::string& kid() const { return kid_; }  // empty when the JWK has none
  std::optional<Alg> alg() const { return alg_; }
  const std::string& use() const { return use_; }  // empty when the JWK has none
  EVP_PKEY* pkey() const { return pkey_.get(); }  // null for oct keys
  std::string_view secret() const { return secret_; }  // empty unless oct

  // Why this key must not verify a signature made with `alg`, or nullptr when it may: the key
  // type (and curve) must be the one `alg` is defined for (RFC 7518 §3.1), so a token cannot pick
  // an algorithm that turns a public key into an HMAC secret; the key's own "alg", when set, must
  // equal `alg` (RFC 7517 §4.4); "use" must be "sig" and "key_ops" must allow "verify" when
  // present (RFC 7517 §4.2, §4.3); an HMAC key must be at least as long as the hash output
  // (RFC 7518 §3.2).
  const char* mismatch(Alg alg) const;
  bool canVerify(Alg alg) const { return mismatch(alg) == nullptr; }
  // The same key material under the same JWK parameters.
  bool sameAs(const Key& other) const;

 private:
  struct PkeyFree {
    void operator()(EVP_PKEY* pkey) const;
  };

  Key() = default;
  const char* typeMismatch(Alg alg) const;  // the key type / curve part of mismatch()

  KeyType type_ = KeyType::Oct;
  Curve curve_ = Curve::None;
  std::optional<Alg> alg_;
  bool ops_allow_verify_ = true;
  std::string kid_;
  std::string use_;
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey_;
  std::string secret_;
};

// The keys one auth provider trusts. Keys are kept in document order; several may share a kid
// (RFC 7517 §4.5 only says they SHOULD differ), and the verifier tries each that fits.
class KeySet {
 public:
  void add(Key key) { keys_.push_back(std::move(key)); }
  const std::vector<Key>& keys() const { return keys_; }
  // The first key whose kid is `kid`, or nullptr.
  const Key* find(std::string_view kid) const;
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  // The same keys in the same order: a refetch that finds this has nothing to publish.
  bool sameAs(const KeySet& other) const;

 private:
  std::vector<Key> keys_;
};

struct JwksResult {
  KeySet keys;
  // One entry per problem, e.g. `keys[2] (kid "k1"): EC point is not on the curve`. A key with a
  // problem is skipped; the others are still loaded.
  std::vector<std::string> errors;
  // False when the document is not a JSON object with a "keys" array (RFC 7517 §5): a refresh
  // should then keep the key set it has.
  bool document_ok = false;
};

// Parses a JWK Set document. Never throws (std::bad_alloc aside).
JwksResult parseJwks(std::string_view json_text);

}  // namespace portico::auth::jwt
