#pragma once
// Test helpers shared by the JWK and verifier tests: generated keys and their public JWKs.

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "auth/jwt/base64url.hpp"
#include "auth/jwt/json.hpp"
#include "auth/jwt/openssl_util.hpp"

namespace portico::auth::jwt::test_keys {

using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<&EVP_PKEY_free>>;

// A BIGNUM parameter of a key, big-endian, left-padded to `pad_to` bytes, base64url.
inline std::string bnBase64(EVP_PKEY* pkey, const char* name, int pad_to = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
  std::string out(pad_to > 0 ? pad_to : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_free(bn);
  return base64UrlEncode(out);
}

// The public JWK of a generated RSA, EC or Ed25519 key, as an issuer would publish it.
inline Json publicJwk(EVP_PKEY* pkey) {
  Json jwk;
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    jwk = {{"kty", "RSA"}, {"n", bnBase64(pkey, OSSL_PKEY_PARAM_RSA_N)},
           {"e", bnBase64(pkey, OSSL_PKEY_PARAM_RSA_E)}};
  } else if (EVP_PKEY_is_a(pkey, "EC")) {
    const int bits = EVP_PKEY_get_bits(pkey);
    const int size = (bits + 7) / 8;
    jwk = {{"kty", "EC"}, {"crv", bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521"},
           {"x", bnBase64(pkey, OSSL_PKEY_PARAM_EC_PUB_X, size)},
           {"y", bnBase64(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, size)}};
  } else {
    unsigned char raw[32];
    size_t len = sizeof(raw);
    EXPECT_EQ(EVP_PKEY_get_raw_public_key(pkey, raw, &len), 1);
    jwk = {{"kty", "OKP"}, {"crv", "Ed25519"},
           {"x", base64UrlEncode(std::string_view(reinterpret_cast<char*>(raw), len))}};
  }
  return jwk;
}

}  // namespace portico::auth::jwt::test_keys
