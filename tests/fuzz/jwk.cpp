// Fuzz target: JWK and JWK Set parsing (src/auth/jwt/jwk.hpp). JWKS documents come from
// configured files and from the network (jwks_url), so the parser meets arbitrary JSON; the keys
// it accepts then go to OpenSSL. Each accepted key is also put to work: every algorithm is asked
// whether the key may verify it, and those it may are tried on a signature that must not hold.
//
// Input: a JWKS document, or (as Key::fromJwkText also reads it) a single JWK.

#include <openssl/err.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "auth/jwt/jwk.hpp"
#include "auth/jwt/verifier.hpp"
#include "fuzz_util.hpp"

namespace {

using namespace portico;
using namespace portico::auth::jwt;

constexpr Alg kAlgs[] = {Alg::HS256, Alg::HS384, Alg::HS512, Alg::RS256, Alg::RS384,
                         Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256,
                         Alg::ES384, Alg::ES512, Alg::EdDSA};

void checkKey(const Key& key) {
  switch (key.type()) {
    case KeyType::Oct:
      FUZZ_CHECK(key.pkey() == nullptr && key.curve() == Curve::None);
      break;
    case KeyType::Rsa:
      FUZZ_CHECK(key.pkey() != nullptr && key.curve() == Curve::None && key.secret().empty());
      break;
    case KeyType::Ec:
      FUZZ_CHECK(key.pkey() != nullptr && key.secret().empty());
      FUZZ_CHECK(key.curve() == Curve::P256 || key.curve() == Curve::P384 ||
                 key.curve() == Curve::P521);
      break;
    case KeyType::Okp:
      FUZZ_CHECK(key.pkey() != nullptr && key.curve() == Curve::Ed25519 && key.secret().empty());
      break;
  }
  // A signature of the right length for no algorithm and all zeros: it must never verify.
  const std::string zeros(512, '\0');
  for (Alg alg : kAlgs) {
    if (!key.canVerify(alg)) continue;
    if (key.alg()) FUZZ_CHECK(*key.alg() == alg);
    FUZZ_CHECK(!verifySignature(alg, key, "eyJhbGciOiJub25lIn0.e30", zeros));
    FUZZ_CHECK(!verifySignature(alg, key, "eyJhbGciOiJub25lIn0.e30", {}));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const JwksResult set = parseJwks(text);
  FUZZ_CHECK(ERR_peek_error() == 0);
  if (!set.document_ok) {
    FUZZ_CHECK(set.keys.empty() && set.errors.size() == 1);
  } else {
    // Every entry of "keys" is either loaded or reported, never both, never neither.
    Json doc;
    FUZZ_CHECK(parseJson(text, doc));
    const Json* entries = findMember(doc, "keys");
    FUZZ_CHECK(entries != nullptr && entries->is_array());
    FUZZ_CHECK(set.keys.size() + set.errors.size() == entries->size());
  }
  for (const Key& key : set.keys.keys()) checkKey(key);
  FUZZ_CHECK(ERR_peek_error() == 0);
  // A refetch of the same document finds the same keys (and so publishes nothing).
  FUZZ_CHECK(set.keys.sameAs(set.keys) && set.keys.sameAs(parseJwks(text).keys));

  std::string error;
  const std::optional<Key> key = Key::fromJwkText(text, error);
  FUZZ_CHECK(key.has_value() == error.empty());
  if (key) {
    checkKey(*key);
    FUZZ_CHECK(key->sameAs(*key));
  }
  FUZZ_CHECK(ERR_peek_error() == 0);
  return 0;
}
