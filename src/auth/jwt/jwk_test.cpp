#include "auth/jwt/jwk.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "auth/jwt/base64url.hpp"
#include "auth/jwt/test_keys.hpp"

namespace portico::auth::jwt {
namespace {

// Public keys published in RFC 7515 Appendix A.1-A.4 and RFC 8037 Appendix A.2.
constexpr const char* kRfc7515OctJwk =
    "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4h"
    "cgUuTwjAzZr1Z9CAow\"}";
constexpr const char* kRfc7515RsaJwk =
    "{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26"
    "mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soM"
    "Zo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4u"
    "DZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h"
    "4FRWyuXpoQ\"}";
constexpr const char* kRfc7515P256Jwk =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\""
    ":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
constexpr const char* kRfc7515P521Jwk =
    "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5E"
    "OnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk\",\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th"
    "-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"}";
constexpr const char* kRfc8037Ed25519Jwk =
    R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})";

using test_keys::PkeyPtr;
using test_keys::publicJwk;

Json jwkOf(const char* text) { return Json::parse(text); }

std::string rejection(const Json& jwk) {
  std::string error;
  const std::optional<Key> key = Key::fromJwk(jwk, error);
  EXPECT_FALSE(key.has_value()) << jwk.dump();
  return error;
}

TEST(JwtJwk, ParsesTheRfc7515AndRfc8037Keys) {
  std::string error;
  const std::optional<Key> oct = Key::fromJwkText(kRfc7515OctJwk, error);
  ASSERT_TRUE(oct) << error;
  EXPECT_EQ(oct->type(), KeyType::Oct);
  EXPECT_EQ(oct->secret().size(), 64u);
  EXPECT_EQ(oct->pkey(), nullptr);

  const std::optional<Key> rsa = Key::fromJwkText(kRfc7515RsaJwk, error);
  ASSERT_TRUE(rsa) << error;
  EXPECT_EQ(rsa->type(), KeyType::Rsa);
  EXPECT_EQ(EVP_PKEY_get_bits(rsa->pkey()), 2048);

  const std::optional<Key> p256 = Key::fromJwkText(kRfc7515P256Jwk, error);
  ASSERT_TRUE(p256) << error;
  EXPECT_EQ(p256->type(), KeyType::Ec);
  EXPECT_EQ(p256->curve(), Curve::P256);

  const std::optional<Key> p521 = Key::fromJwkText(kRfc7515P521Jwk, error);
  ASSERT_TRUE(p521) << error;
  EXPECT_EQ(p521->curve(), Curve::P521);

  const std::optional<Key> ed = Key::fromJwkText(kRfc8037Ed25519Jwk, error);
  ASSERT_TRUE(ed) << error;
  EXPECT_EQ(ed->type(), KeyType::Okp);
  EXPECT_EQ(ed->curve(), Curve::Ed25519);
}

TEST(JwtJwk, ReadsKidAlgAndUse) {
  Json jwk = jwkOf(kRfc7515P256Jwk);
  jwk["kid"] = "k1";
  jwk["alg"] = "ES256";
  jwk["use"] = "sig";
  std::string error;
  const std::optional<Key> key = Key::fromJwk(jwk, error);
  ASSERT_TRUE(key) << error;
  EXPECT_EQ(key->kid(), "k1");
  EXPECT_EQ(key->alg(), Alg::ES256);
  EXPECT_EQ(key->use(), "sig");
}

TEST(JwtJwk, ParsesGeneratedKeys) {
  PkeyPtr keys[] = {
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072})),
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384")),
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521")),
      PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")),
  };
  for (const PkeyPtr& pkey : keys) {
    ASSERT_NE(pkey, nullptr);
    std::string error;
    const std::optional<Key> key = Key::fromJwk(publicJwk(pkey.get()), error);
    ASSERT_TRUE(key) << error;
    EXPECT_EQ(EVP_PKEY_eq(key->pkey(), pkey.get()), 1);  // same public key
  }
}

// An invalid-curve attack feeds a point off the curve so that ECDH or a signature check runs
// in a weak group; the key must be refused at load.
TEST(JwtJwk, RejectsEcPointNotOnTheCurve) {
  Json jwk = jwkOf(kRfc7515P256Jwk);
  std::string y = *base64UrlDecode(jwk["y"].get<std::string>());
  y[31] ^= 1;
  jwk["y"] = base64UrlEncode(y);
  EXPECT_EQ(rejection(jwk), "EC point is not on the curve");

  Json zero = jwkOf(kRfc7515P256Jwk);
  zero["x"] = base64UrlEncode(std::string(32, '\0'));
  zero["y"] = base64UrlEncode(std::string(32, '\0'));
  EXPECT_EQ(rejection(zero), "EC point is not on the curve");
  EXPECT_EQ(ERR_peek_error(), 0u);  // nothing left on OpenSSL's error queue
}

TEST(JwtJwk, RejectsEcCoordinatesOfTheWrongSize) {
  Json jwk = jwkOf(kRfc7515P256Jwk);
  jwk["x"] = base64UrlEncode(base64UrlDecode(jwk["x"].get<std::string>())->substr(1));
  EXPECT_EQ(rejection(jwk), "EC x and y must be 32 bytes for P-256");
  Json p384 = jwkOf(kRfc7515P256Jwk);
  p384["crv"] = "P-384";  // a P-256 point labelled P-384
  EXPECT_EQ(rejection(p384), "EC x and y must be 48 bytes for P-384");
}

TEST(JwtJwk, RejectsUnsupportedTypesAndCurves) {
  EXPECT_EQ(rejection(Json::parse(R"({"k":"AAAA"})")), "missing or non-string \"kty\"");
  EXPECT_EQ(rejection(Json::parse(R"({"kty":"DSA"})")), "unsupported \"kty\" \"DSA\"");
  Json secp256k1 = jwkOf(kRfc7515P256Jwk);
  secp256k1["crv"] = "secp256k1";
  EXPECT_EQ(rejection(secp256k1), "unsupported or missing EC \"crv\"");
  for (const char* crv : {"Ed448", "X25519"}) {
    Json okp = jwkOf(kRfc8037Ed25519Jwk);
    okp["crv"] = crv;
    EXPECT_EQ(rejection(okp), "unsupported or missing OKP \"crv\" (only Ed25519)");
  }
  EXPECT_EQ(rejection(Json::parse("[1]")), "not a JSON object");
  EXPECT_EQ(rejection(Json::parse(R"({"kty":"oct","k":""})")), "empty oct \"k\"");
  EXPECT_EQ(rejection(Json::parse(R"({"kty":"oct","k":"AA=="})")), "\"k\" is not base64url");
  std::string error;
  EXPECT_FALSE(Key::fromJwkText(std::string_view("{\"kty\":"), error));
  EXPECT_EQ(error, "not valid JSON");
}

TEST(JwtJwk, RejectsWeakOrOddRsaKeys) {
  PkeyPtr small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(rejection(publicJwk(small.get())),
            "RSA modulus of 1024 bits (2048 to 16384 are accepted)");
  Json even = jwkOf(kRfc7515RsaJwk);
  even["e"] = base64UrlEncode(std::string("\x01\x00\x00", 3));
  EXPECT_EQ(rejection(even), "bad RSA public exponent");
  Json one = jwkOf(kRfc7515RsaJwk);
  one["e"] = "AQ";
  EXPECT_EQ(rejection(one), "bad RSA public exponent");
  Json missing = jwkOf(kRfc7515RsaJwk);
  missing.erase("n");
  EXPECT_EQ(rejection(missing), "missing or non-string \"n\"");
}

TEST(JwtJwk, RejectsAnAlgThatDoesNotFitTheKey) {
  Json rsa = jwkOf(kRfc7515RsaJwk);
  rsa["alg"] = "ES256";
  EXPECT_EQ(rejection(rsa), "\"alg\" ES256 does not fit the key: ES256 needs a P-256 key");
  Json oaep = jwkOf(kRfc7515RsaJwk);
  oaep["alg"] = "RSA-OAEP";
  EXPECT_EQ(rejection(oaep), "unsupported \"alg\" \"RSA-OAEP\"");
  Json p256 = jwkOf(kRfc7515P256Jwk);
  p256["alg"] = "ES384";
  EXPECT_EQ(rejection(p256), "\"alg\" ES384 does not fit the key: ES384 needs a P-384 key");
  Json kid = jwkOf(kRfc7515P256Jwk);
  kid["kid"] = 7;
  EXPECT_EQ(rejection(kid), "\"kid\" is not a string");
}

TEST(JwtJwk, KeyTypeDecidesWhichAlgorithmsItVerifies) {
  std::string error;
  const Key rsa = *Key::fromJwkText(kRfc7515RsaJwk, error);
  const Key p256 = *Key::fromJwkText(kRfc7515P256Jwk, error);
  const Key p521 = *Key::fromJwkText(kRfc7515P521Jwk, error);
  const Key ed = *Key::fromJwkText(kRfc8037Ed25519Jwk, error);
  const Key oct = *Key::fromJwkText(kRfc7515OctJwk, error);
  for (Alg alg : {Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512}) {
    EXPECT_TRUE(rsa.canVerify(alg));
    EXPECT_FALSE(oct.canVerify(alg));
    EXPECT_FALSE(p256.canVerify(alg));
  }
  for (Alg alg : {Alg::HS256, Alg::HS384, Alg::HS512}) {
    EXPECT_TRUE(oct.canVerify(alg));
    EXPECT_STREQ(rsa.mismatch(alg), "HS* needs an oct key");
    EXPECT_FALSE(ed.canVerify(alg));
  }
  EXPECT_TRUE(p256.canVerify(Alg::ES256));
  EXPECT_FALSE(p256.canVerify(Alg::ES384));
  EXPECT_FALSE(p256.canVerify(Alg::ES512));
  EXPECT_TRUE(p521.canVerify(Alg::ES512));
  EXPECT_FALSE(p521.canVerify(Alg::ES256));
  EXPECT_TRUE(ed.canVerify(Alg::EdDSA));
  EXPECT_FALSE(rsa.canVerify(Alg::EdDSA));
  EXPECT_FALSE(p256.canVerify(Alg::EdDSA));
}

TEST(JwtJwk, UseKeyOpsAndAlgNarrowTheKey) {
  Json enc = jwkOf(kRfc7515RsaJwk);
  enc["use"] = "enc";
  std::string error;
  const std::optional<Key> enc_key = Key::fromJwk(enc, error);
  ASSERT_TRUE(enc_key) << error;
  EXPECT_STREQ(enc_key->mismatch(Alg::RS256), "the key's use is not sig");

  Json sign_only = jwkOf(kRfc7515RsaJwk);
  sign_only["key_ops"] = {"sign"};
  EXPECT_FALSE(Key::fromJwk(sign_only, error)->canVerify(Alg::RS256));
  sign_only["key_ops"] = {"sign", "verify"};
  EXPECT_TRUE(Key::fromJwk(sign_only, error)->canVerify(Alg::RS256));

  Json pinned = jwkOf(kRfc7515RsaJwk);
  pinned["alg"] = "PS256";
  const std::optional<Key> ps = Key::fromJwk(pinned, error);
  EXPECT_TRUE(ps->canVerify(Alg::PS256));
  EXPECT_STREQ(ps->mismatch(Alg::RS256), "the key is for another alg");
}

// RFC 7518 §3.2: the HMAC key must be at least as long as the hash output.
TEST(JwtJwk, ShortHmacSecretsAreRefusedPerAlgorithm) {
  const Key key = Key::fromSecret(std::string(40, 's'));
  EXPECT_TRUE(key.canVerify(Alg::HS256));
  EXPECT_FALSE(key.canVerify(Alg::HS384));
  EXPECT_FALSE(key.canVerify(Alg::HS512));
  EXPECT_FALSE(Key::fromSecret("changeme").canVerify(Alg::HS256));
  const Key pinned = Key::fromSecret(std::string(64, 's'), "kid-1", Alg::HS512);
  EXPECT_EQ(pinned.kid(), "kid-1");
  EXPECT_FALSE(pinned.canVerify(Alg::HS256));
  EXPECT_TRUE(pinned.canVerify(Alg::HS512));
}

TEST(JwtJwks, LoadsValidKeysAndReportsTheOthers) {
  Json rsa = jwkOf(kRfc7515RsaJwk);
  rsa["kid"] = "rsa-1";
  Json ec = jwkOf(kRfc7515P256Jwk);
  ec["kid"] = "ec-1";
  Json broken = jwkOf(kRfc7515P256Jwk);
  broken["kid"] = "ec-broken";
  broken["y"] = broken["x"];
  const Json doc = {{"keys", {rsa, Json::parse(R"({"kty":"XYZ"})"), ec, broken, "text"}}};
  const JwksResult result = parseJwks(doc.dump());
  EXPECT_TRUE(result.document_ok);
  ASSERT_EQ(result.keys.size(), 2u);
  EXPECT_EQ(result.keys.find("rsa-1")->type(), KeyType::Rsa);
  EXPECT_EQ(result.keys.find("ec-1")->curve(), Curve::P256);
  EXPECT_EQ(result.keys.find("ec-broken"), nullptr);
  EXPECT_EQ(result.keys.find("missing"), nullptr);
  ASSERT_EQ(result.errors.size(), 3u);
  EXPECT_EQ(result.errors[0], "keys[1]: unsupported \"kty\" \"XYZ\"");
  EXPECT_EQ(result.errors[1], "keys[3] (kid \"ec-broken\"): EC point is not on the curve");
  EXPECT_EQ(result.errors[2], "keys[4]: not a JSON object");
}

// Review L4: a refetch that finds the same keys is not published (it would clear token caches).
TEST(JwtJwks, SameKeySetsCompareEqual) {
  Json rsa = jwkOf(kRfc7515RsaJwk);
  rsa["kid"] = "rsa-1";
  Json ec = jwkOf(kRfc7515P256Jwk);
  ec["kid"] = "ec-1";
  const JwksResult a = parseJwks(Json{{"keys", {rsa, ec}}}.dump());
  const JwksResult b = parseJwks(Json{{"keys", {rsa, ec}}}.dump());
  EXPECT_TRUE(a.keys.sameAs(b.keys));
  EXPECT_FALSE(a.keys.sameAs(parseJwks(Json{{"keys", {ec, rsa}}}.dump()).keys));
  EXPECT_FALSE(a.keys.sameAs(parseJwks(Json{{"keys", {rsa}}}.dump()).keys));
  Json renamed = ec;
  renamed["kid"] = "ec-2";
  EXPECT_FALSE(a.keys.sameAs(parseJwks(Json{{"keys", {rsa, renamed}}}.dump()).keys));
  Json other_key = jwkOf(kRfc7515RsaJwk);
  other_key["kid"] = "rsa-1";
  other_key["alg"] = "RS256";
  EXPECT_FALSE(a.keys.sameAs(parseJwks(Json{{"keys", {other_key, ec}}}.dump()).keys));
}

TEST(JwtJwks, RejectsDocumentsWithoutAKeysArray) {
  for (const char* text : {"", "{", "[]", "{}", R"({"keys":{}})", R"({"keys":"x"})"}) {
    const JwksResult result = parseJwks(text);
    EXPECT_FALSE(result.document_ok) << text;
    EXPECT_TRUE(result.keys.empty());
    EXPECT_EQ(result.errors.size(), 1u);
  }
  const JwksResult empty = parseJwks(R"({"keys":[]})");
  EXPECT_TRUE(empty.document_ok);
  EXPECT_TRUE(empty.keys.empty());
  EXPECT_TRUE(empty.errors.empty());
}

TEST(JwtAlg, NamesRoundTripAndAreCaseSensitive) {
  for (int i = 0; i <= static_cast<int>(Alg::EdDSA); ++i) {
    const auto alg = static_cast<Alg>(i);
    EXPECT_EQ(parseAlg(algName(alg)), alg);
  }
  EXPECT_FALSE(parseAlg("hs256"));
  EXPECT_FALSE(parseAlg("none"));
  EXPECT_FALSE(parseAlg("EDDSA"));
  EXPECT_FALSE(parseAlg(""));
}

}  // namespace
}  // namespace portico::auth::jwt
