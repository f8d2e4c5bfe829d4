#include "auth/jwt/verifier.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

#include "auth/jwt/base64url.hpp"
#include "auth/jwt/test_keys.hpp"

namespace portico::auth::jwt {
namespace {

using enum VerifyStatus;

// ---- Published vectors: RFC 7515 Appendix A.1-A.4 and RFC 8037 Appendix A.4 ----

constexpr int64_t kRfcNow = 1300819000;  // before the RFC 7515 examples' exp of 1300819380
constexpr const char* kRfc7515Claims =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlf"
    "Q";
constexpr const char* kA1Token =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlf"
    "Q."
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr const char* kA1Jwk =
    "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4h"
    "cgUuTwjAzZr1Z9CAow\"}";
constexpr const char* kA2Token =
    "eyJhbGciOiJSUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlf"
    "Q."
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1"
    "L07"
    "Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUip"
    "UTI8"
    "np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
constexpr const char* kA2Jwk =
    "{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26"
    "mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soM"
    "Zo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4u"
    "DZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h"
    "4FRWyuXpoQ\"}";
constexpr const char* kA3Token =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlf"
    "Q."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
constexpr const char* kA3Jwk =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\""
    ":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
// A.4 signs the payload "Payload", which is not a JWT claims set.
constexpr const char* kA4Token =
    "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA."
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8Ga"
    "SwF"
    "KdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
constexpr const char* kA4Jwk =
    "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5E"
    "OnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk\",\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th"
    "-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"}";
// RFC 8037 A.4 signs "Example of Ed25519 signing", also not a claims set.
constexpr const char* kEd25519Token =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
constexpr const char* kEd25519Jwk =
    R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})";

Key jwkKey(const Json& jwk) {
  std::string error;
  std::optional<Key> key = Key::fromJwk(jwk, error);
  EXPECT_TRUE(key) << error;
  return std::move(*key);
}

KeySet setOf(const char* jwk_text) {
  KeySet set;
  set.add(jwkKey(Json::parse(jwk_text)));
  return set;
}

VerifyPolicy allowing(std::initializer_list<Alg> algs) {
  VerifyPolicy policy;
  policy.algorithms = algs;
  return policy;
}

std::string_view signingInput(std::string_view token) { return token.substr(0, token.rfind('.')); }
std::string signatureOf(std::string_view token) {
  return *base64UrlDecode(token.substr(token.rfind('.') + 1));
}

TEST(JwtVerifyRfc, Rfc7515A1Hs256) {
  const VerifyResult r = verify(kA1Token, setOf(kA1Jwk), allowing({Alg::HS256}), kRfcNow);
  ASSERT_EQ(r.status, Ok) << r.reason;
  EXPECT_EQ(r.claims["iss"], "joe");
  EXPECT_EQ(r.claims["exp"], 1300819380);
  EXPECT_EQ(r.claims["http://example.com/is_root"], true);
  EXPECT_EQ(r.header["typ"], "JWT");
}

TEST(JwtVerifyRfc, Rfc7515A2Rs256) {
  const VerifyResult r = verify(kA2Token, setOf(kA2Jwk), allowing({Alg::RS256}), kRfcNow);
  ASSERT_EQ(r.status, Ok) << r.reason;
  EXPECT_EQ(r.claims["iss"], "joe");
}

TEST(JwtVerifyRfc, Rfc7515A3Es256) {
  const VerifyResult r = verify(kA3Token, setOf(kA3Jwk), allowing({Alg::ES256}), kRfcNow);
  ASSERT_EQ(r.status, Ok) << r.reason;
  EXPECT_EQ(r.claims["iss"], "joe");
}

// The payload is not JSON, so verify() stops after the signature: BadJson (not BadSignature)
// shows the signature held, and verifySignature() checks it directly.
TEST(JwtVerifyRfc, Rfc7515A4Es512) {
  const KeySet keys = setOf(kA4Jwk);
  EXPECT_TRUE(verifySignature(Alg::ES512, keys.keys()[0], signingInput(kA4Token),
                              signatureOf(kA4Token)));
  VerifyPolicy policy = allowing({Alg::ES512});
  policy.require_exp = false;
  EXPECT_EQ(verify(kA4Token, keys, policy, kRfcNow).status, BadJson);
  std::string forged = kA4Token;
  forged[22] = 'X';  // "UGF5bG9hZA" -> "UXF5bG9hZA"
  EXPECT_EQ(verify(forged, keys, policy, kRfcNow).status, BadSignature);
}

TEST(JwtVerifyRfc, Rfc8037A4Ed25519) {
  const KeySet keys = setOf(kEd25519Jwk);
  EXPECT_TRUE(verifySignature(Alg::EdDSA, keys.keys()[0], signingInput(kEd25519Token),
                              signatureOf(kEd25519Token)));
  EXPECT_EQ(verify(kEd25519Token, keys, allowing({Alg::EdDSA}), kRfcNow).status, BadJson);
  std::string forged = kEd25519Token;
  forged[21] = 'S';  // "RXhh..." -> "SXhh..."
  EXPECT_FALSE(verifySignature(Alg::EdDSA, keys.keys()[0], signingInput(forged),
                               signatureOf(forged)));
  EXPECT_EQ(verify(forged, keys, allowing({Alg::EdDSA}), kRfcNow).status, BadSignature);
}

TEST(JwtVerifyRfc, TamperedRfcTokensFail) {
  std::string payload_changed = kA1Token;
  payload_changed.replace(payload_changed.find('.') + 1, 2, "fy");  // different claims bytes
  EXPECT_EQ(verify(payload_changed, setOf(kA1Jwk), allowing({Alg::HS256}), kRfcNow).status,
            BadSignature);
  // The RS256 signature of A.2 presented with the A.1 header and the RSA key.
  const std::string swapped = std::string("eyJhbGciOiJSUzI1NiJ9.") + kRfc7515Claims + "." +
                              base64UrlEncode(signatureOf(kA1Token));
  EXPECT_EQ(verify(swapped, setOf(kA2Jwk), allowing({Alg::RS256}), kRfcNow).status, BadSignature);
}

TEST(JwtVerifyRfc, Rfc7515TokensExpireAtExp) {
  const KeySet keys = setOf(kA1Jwk);
  VerifyPolicy policy = allowing({Alg::HS256});
  EXPECT_EQ(verify(kA1Token, keys, policy, 1300819379).status, Ok);
  EXPECT_EQ(verify(kA1Token, keys, policy, 1300819380).status, Expired);  // now >= exp
  policy.leeway = std::chrono::seconds(30);
  EXPECT_EQ(verify(kA1Token, keys, policy, 1300819409).status, Ok);
  EXPECT_EQ(verify(kA1Token, keys, policy, 1300819410).status, Expired);
}

// ---- Generated keys (EVP_PKEY_Q_keygen) and tokens signed here with EVP_DigestSign ----

using test_keys::PkeyPtr;

const std::string kHmacSecret(64, 'k');

// One key of each kind, generated once for the whole binary (RSA generation is slow).
EVP_PKEY* testKey(const char* which) {
  static const struct Keys {
    PkeyPtr rsa{EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})};
    PkeyPtr p256{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
    PkeyPtr p256b{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
    PkeyPtr p384{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384")};
    PkeyPtr p521{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521")};
    PkeyPtr ed{EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")};
  } keys;
  const std::string_view name = which;
  EVP_PKEY* pkey = name == "rsa"    ? keys.rsa.get()
                   : name == "p256" ? keys.p256.get()
                   : name == "p256b" ? keys.p256b.get()
                   : name == "p384" ? keys.p384.get()
                   : name == "p521" ? keys.p521.get()
                                    : keys.ed.get();
  EXPECT_NE(pkey, nullptr);
  return pkey;
}

const char* keyNameFor(Alg alg) {
  switch (alg) {
    case Alg::ES256: return "p256";
    case Alg::ES384: return "p384";
    case Alg::ES512: return "p521";
    case Alg::EdDSA: return "ed";
    default: return "rsa";
  }
}

Key publicKey(EVP_PKEY* pkey, const std::string& kid = "") {
  Json jwk = test_keys::publicJwk(pkey);
  if (!kid.empty()) jwk["kid"] = kid;
  return jwkKey(jwk);
}

const EVP_MD* mdFor(Alg alg) {
  const std::string_view name = algName(alg);
  if (alg == Alg::EdDSA) return nullptr;
  if (name.ends_with("256")) return EVP_sha256();
  if (name.ends_with("384")) return EVP_sha384();
  return EVP_sha512();
}

// A JWS signature over `input`, in the JWS form (raw R || S for ECDSA, RFC 7518 §3.4).
std::string signWith(Alg alg, EVP_PKEY* pkey, const std::string& secret, std::string_view input) {
  const std::string_view name = algName(alg);
  if (name.starts_with("HS")) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(mdFor(alg), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit(ctx, &pctx, mdFor(alg), nullptr, pkey), 1);
  if (name.starts_with("PS")) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  size_t len = 0;
  EXPECT_EQ(EVP_DigestSign(ctx, nullptr, &len, data, input.size()), 1);
  std::string sig(len, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                           input.size()), 1);
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  if (!name.starts_with("ES")) return sig;
  const int half = (EVP_PKEY_get_bits(pkey) + 7) / 8;
  const auto* der = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(sig.size()));
  std::string raw(2 * half, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(raw.data()), half);
  BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(raw.data()) + half, half);
  ECDSA_SIG_free(ecdsa);
  return raw;
}

constexpr int64_t kNow = 1700000000;

Json claimsValidNow() { return {{"sub", "alice"}, {"exp", kNow + 600}, {"iat", kNow - 10}}; }

// header.payload.signature over the given header and payload texts, exactly as given.
std::string rawToken(Alg alg, const std::string& header, const std::string& payload,
                      EVP_PKEY* pkey = nullptr, const std::string& secret = kHmacSecret) {
  const std::string input = base64UrlEncode(header) + "." + base64UrlEncode(payload);
  if (pkey == nullptr && !std::string_view(algName(alg)).starts_with("HS")) {
    pkey = testKey(keyNameFor(alg));
  }
  return input + "." + base64UrlEncode(signWith(alg, pkey, secret, input));
}

std::string makeToken(Alg alg, const Json& claims = claimsValidNow(), const std::string& kid = "") {
  Json header = {{"alg", algName(alg)}, {"typ", "JWT"}};
  if (!kid.empty()) header["kid"] = kid;
  return rawToken(alg, header.dump(), claims.dump());
}

KeySet keysFor(Alg alg, const std::string& kid = "") {
  KeySet set;
  if (std::string_view(algName(alg)).starts_with("HS")) {
    set.add(Key::fromSecret(kHmacSecret, kid));
  } else {
    set.add(publicKey(testKey(keyNameFor(alg)), kid));
  }
  return set;
}

class JwtVerifyEachAlg : public testing::TestWithParam<Alg> {};

TEST_P(JwtVerifyEachAlg, SignedTokenVerifies) {
  const Alg alg = GetParam();
  const VerifyResult r = verify(makeToken(alg), keysFor(alg), allowing({alg}), kNow);
  ASSERT_EQ(r.status, Ok) << r.reason;
  EXPECT_EQ(r.claims["sub"], "alice");
  EXPECT_EQ(r.header["alg"], algName(alg));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_P(JwtVerifyEachAlg, OneFlippedSignatureBitFails) {
  const Alg alg = GetParam();
  const std::string token = makeToken(alg);
  std::string sig = signatureOf(token);
  sig[sig.size() / 2] ^= 0x10;
  const std::string forged = std::string(signingInput(token)) + "." + base64UrlEncode(sig);
  EXPECT_EQ(verify(forged, keysFor(alg), allowing({alg}), kNow).status, BadSignature);
  EXPECT_EQ(ERR_peek_error(), 0u);  // OpenSSL's error queue is left as it was
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, JwtVerifyEachAlg,
                         testing::Values(Alg::HS256, Alg::HS384, Alg::HS512, Alg::RS256,
                                         Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384,
                                         Alg::PS512, Alg::ES256, Alg::ES384, Alg::ES512,
                                         Alg::EdDSA),
                         [](const testing::TestParamInfo<Alg>& info) {
                           return std::string(algName(info.param));
                         });

// ---- Refusals ----

const VerifyPolicy kEveryAlg = allowing({Alg::HS256, Alg::HS384, Alg::HS512, Alg::RS256,
                                         Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384,
                                         Alg::PS512, Alg::ES256, Alg::ES384, Alg::ES512,
                                         Alg::EdDSA});

VerifyStatus statusOf(const std::string& token, const KeySet& keys,
                      const VerifyPolicy& policy = kEveryAlg, int64_t now = kNow) {
  return verify(token, keys, policy, now).status;
}

TEST(JwtVerify, AlgNoneIsAlwaysRefused) {
  const std::string claims = base64UrlEncode(claimsValidNow().dump());
  const std::string unsigned_token = base64UrlEncode(R"({"alg":"none"})") + "." + claims + ".";
  KeySet keys = keysFor(Alg::HS256);
  EXPECT_EQ(statusOf(unsigned_token, keys), AlgNone);
  // The same with a signature attached (an HMAC made with the real key), and spelled otherwise.
  EXPECT_EQ(statusOf(rawToken(Alg::HS256, R"({"alg":"none"})", claimsValidNow().dump()), keys),
            AlgNone);
  EXPECT_EQ(statusOf(base64UrlEncode(R"({"alg":"NoNe"})") + "." + claims + ".", keys), AlgNone);
  keys.add(Key::fromSecret(""));  // even with an empty secret in the set
  EXPECT_EQ(statusOf(unsigned_token, keys), AlgNone);
}

// RFC 8725 §2.1: an HS256 token whose HMAC key is the issuer's RSA public key (which anyone
// can fetch) must not pass as signed by the issuer, in any form the public key comes in.
TEST(JwtVerify, HmacSignedWithTheRsaPublicKeyNeverPasses) {
  EVP_PKEY* rsa = testKey("rsa");
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio, rsa), 1);
  char* pem_data = nullptr;
  const long pem_len = BIO_get_mem_data(bio, &pem_data);
  const std::string pem(pem_data, pem_len);
  BIO_free(bio);
  const std::string n = *base64UrlDecode(test_keys::bnBase64(rsa, OSSL_PKEY_PARAM_RSA_N));
  KeySet rsa_keys;
  rsa_keys.add(publicKey(rsa, "rsa-1"));

  for (const std::string& secret : {pem, n}) {
    for (const std::string& kid : {std::string(), std::string("rsa-1")}) {
      Json header = {{"alg", "HS256"}};
      if (!kid.empty()) header["kid"] = kid;
      const std::string token =
          rawToken(Alg::HS256, header.dump(), claimsValidNow().dump(), nullptr, secret);
      EXPECT_EQ(statusOf(token, rsa_keys, allowing({Alg::RS256})), AlgNotAllowed);
      EXPECT_EQ(statusOf(token, rsa_keys, allowing({Alg::RS256, Alg::HS256})), AlgKeyMismatch);
      EXPECT_EQ(statusOf(token, rsa_keys, kEveryAlg), AlgKeyMismatch);
    }
  }
}

TEST(JwtVerify, KeyOfAnotherTypeOrCurveIsAMismatch) {
  EXPECT_EQ(statusOf(makeToken(Alg::ES256), keysFor(Alg::RS256)), AlgKeyMismatch);
  EXPECT_EQ(statusOf(makeToken(Alg::RS256), keysFor(Alg::ES256)), AlgKeyMismatch);
  EXPECT_EQ(statusOf(makeToken(Alg::ES256), keysFor(Alg::ES384)), AlgKeyMismatch);
  EXPECT_EQ(statusOf(makeToken(Alg::EdDSA), keysFor(Alg::ES256)), AlgKeyMismatch);
  KeySet pinned;
  Json jwk = {{"kty", "oct"}, {"k", base64UrlEncode(kHmacSecret)}, {"alg", "HS512"}};
  pinned.add(jwkKey(jwk));
  EXPECT_EQ(statusOf(makeToken(Alg::HS256), pinned), AlgKeyMismatch);  // key pinned to HS512
  KeySet short_secret;
  short_secret.add(Key::fromSecret("short"));
  const std::string token = rawToken(Alg::HS256, R"({"alg":"HS256"})", claimsValidNow().dump(),
                                      nullptr, "short");
  EXPECT_EQ(statusOf(token, short_secret), AlgKeyMismatch);  // RFC 7518 §3.2
  EXPECT_EQ(statusOf(makeToken(Alg::HS256), KeySet()), AlgKeyMismatch);
}

TEST(JwtVerify, WrongKeyIsABadSignature) {
  KeySet other;
  other.add(publicKey(testKey("p256b")));
  EXPECT_EQ(statusOf(makeToken(Alg::ES256), other), BadSignature);
  KeySet other_secret;
  other_secret.add(Key::fromSecret(std::string(64, 'x')));
  EXPECT_EQ(statusOf(makeToken(Alg::HS256), other_secret), BadSignature);
  // PS256 and RS256 signatures are not interchangeable.
  const std::string rs = makeToken(Alg::RS256);
  const std::string as_ps = base64UrlEncode(R"({"alg":"PS256","typ":"JWT"})") +
                            rs.substr(rs.find('.'));
  EXPECT_EQ(statusOf(as_ps, keysFor(Alg::RS256)), BadSignature);
}

TEST(JwtVerify, KidSelectsTheKey) {
  KeySet keys;
  keys.add(publicKey(testKey("p256b"), "b"));
  keys.add(publicKey(testKey("p256"), "a"));
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claimsValidNow(), "a"), keys), Ok);
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claimsValidNow(), "b"), keys), BadSignature);
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claimsValidNow(), "c"), keys), UnknownKid);
  // Without a kid, every key that fits the alg is tried.
  keys.add(publicKey(testKey("rsa"), "r"));
  EXPECT_EQ(statusOf(makeToken(Alg::ES256), keys), Ok);
  EXPECT_EQ(statusOf(makeToken(Alg::RS256), keys), Ok);
  EXPECT_EQ(statusOf(makeToken(Alg::RS256, claimsValidNow(), "a"), keys), AlgKeyMismatch);
  EXPECT_EQ(statusOf(rawToken(Alg::RS256, R"({"alg":"RS256","kid":7})", "{}"), keys),
            Malformed);
}

TEST(JwtVerify, KeysWithoutKidServeTokensWithOne) {
  // A configured `secret:` has no kid; issuers still put one in the header.
  EXPECT_EQ(statusOf(makeToken(Alg::HS256, claimsValidNow(), "any"), keysFor(Alg::HS256)), Ok);
}

TEST(JwtVerify, TimeClaims) {
  const KeySet keys = keysFor(Alg::ES256);
  VerifyPolicy lenient = kEveryAlg;
  lenient.leeway = std::chrono::seconds(60);
  const auto tokenWith = [](Json claims) { return makeToken(Alg::ES256, claims); };
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow - 1}}), keys), Expired);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow}}), keys), Expired);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow - 30}}), keys, lenient), Ok);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow - 60}}), keys, lenient), Expired);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 0.5}}), keys), Ok);  // NumericDate may be a float
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 10}, {"nbf", kNow + 5}}), keys), NotYetValid);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 10}, {"nbf", kNow + 5}}), keys, lenient), Ok);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 100}, {"nbf", kNow + 61}}), keys, lenient),
            NotYetValid);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 10}, {"nbf", kNow}}), keys), Ok);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 10}, {"iat", kNow + 5}}), keys), IssuedInFuture);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 10}, {"iat", kNow + 5}}), keys, lenient), Ok);
  EXPECT_EQ(statusOf(tokenWith({{"exp", std::to_string(kNow + 10)}}), keys), Malformed);
  EXPECT_EQ(statusOf(tokenWith({{"exp", kNow + 10}, {"nbf", nullptr}}), keys), Malformed);
  EXPECT_EQ(statusOf(tokenWith({{"sub", "x"}}), keys), MissingExp);
  VerifyPolicy no_exp = kEveryAlg;
  no_exp.require_exp = false;
  EXPECT_EQ(statusOf(tokenWith({{"sub", "x"}}), keys, no_exp), Ok);
}

TEST(JwtVerify, IssuerMustMatchExactly) {
  const KeySet keys = keysFor(Alg::ES256);
  VerifyPolicy policy = kEveryAlg;
  policy.issuer = "https://idp.example.com/";
  Json claims = claimsValidNow();
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claims), keys, policy), WrongIssuer);  // absent
  claims["iss"] = "https://idp.example.com/";
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claims), keys, policy), Ok);
  claims["iss"] = "https://IDP.example.com/";
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claims), keys, policy), WrongIssuer);
  claims["iss"] = Json::array({"https://idp.example.com/"});
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claims), keys, policy), WrongIssuer);
}

TEST(JwtVerify, AudienceMustNameOneOfThePolicys) {
  const KeySet keys = keysFor(Alg::ES256);
  VerifyPolicy policy = kEveryAlg;
  policy.audiences = {"api", "admin"};
  Json claims = claimsValidNow();
  const auto with = [&](Json aud) {
    claims["aud"] = std::move(aud);
    return statusOf(makeToken(Alg::ES256, claims), keys, policy);
  };
  EXPECT_EQ(with("api"), Ok);
  EXPECT_EQ(with("other"), WrongAudience);
  EXPECT_EQ(with(Json::array({"other", "admin"})), Ok);
  EXPECT_EQ(with(Json::array({"other", "web"})), WrongAudience);
  EXPECT_EQ(with(Json::array()), WrongAudience);
  EXPECT_EQ(with(Json::array({"api", 1})), WrongAudience);
  EXPECT_EQ(with(42), WrongAudience);
  claims.erase("aud");
  EXPECT_EQ(statusOf(makeToken(Alg::ES256, claims), keys, policy), WrongAudience);
}

TEST(JwtVerify, StructureMustBeThreeParts) {
  const KeySet keys = keysFor(Alg::HS256);
  const std::string token = makeToken(Alg::HS256);
  EXPECT_EQ(statusOf(token, keys), Ok);
  EXPECT_EQ(statusOf("", keys), Malformed);
  EXPECT_EQ(statusOf(token.substr(0, token.find('.')), keys), Malformed);
  EXPECT_EQ(statusOf(token.substr(0, token.rfind('.')), keys), Malformed);
  EXPECT_EQ(statusOf(token + ".", keys), Malformed);
  EXPECT_EQ(statusOf(token + ".e30.e30", keys), Malformed);  // five parts: a JWE
  EXPECT_EQ(statusOf(token.substr(0, token.rfind('.') + 1), keys), BadSignature);
}

TEST(JwtVerify, PartsMustBeCanonicalUnpaddedBase64Url) {
  const KeySet keys = keysFor(Alg::HS256);
  const std::string token = makeToken(Alg::HS256);
  const size_t dot2 = token.rfind('.');
  for (const char* bad : {"+", "/", " ", "=", "\n"}) {
    for (size_t at : {size_t{2}, token.find('.') + 3, dot2 + 3}) {
      std::string t = token;
      t[at] = bad[0];
      EXPECT_EQ(statusOf(t, keys), BadBase64) << bad << " at " << at;
    }
  }
  // HS256: 32 bytes = 43 characters; padding it out to 44 with '=' is refused.
  EXPECT_EQ(statusOf(token + "=", keys), BadBase64);
  // The last signature character carries 2 unused bits: setting one gives the same bytes but
  // another token text, which must not verify.
  const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string malleable = token;
  const size_t digit = alphabet.find(malleable.back());
  ASSERT_EQ(digit & 3, 0u);
  malleable.back() = alphabet[digit | 1];
  EXPECT_EQ(statusOf(malleable, keys), BadBase64);
}

TEST(JwtVerify, HeaderMustBeAnObjectWithStringAlg) {
  const KeySet keys = keysFor(Alg::HS256);
  const std::string claims = claimsValidNow().dump();
  const auto status = [&](const std::string& header) {
    return statusOf(rawToken(Alg::HS256, header, claims), keys);
  };
  EXPECT_EQ(status(R"({"alg":"HS256"})"), Ok);
  EXPECT_EQ(status(R"({"typ":"JWT"})"), Malformed);
  EXPECT_EQ(status(R"({"alg":256})"), Malformed);
  EXPECT_EQ(status(R"(["HS256"])"), NotAnObject);
  EXPECT_EQ(status(R"("HS256")"), NotAnObject);
  EXPECT_EQ(status(R"({"alg":"HS256")"), BadJson);
  EXPECT_EQ(status(""), BadJson);
  EXPECT_EQ(status(R"({"alg":"HS1"})"), AlgNotAllowed);
  EXPECT_EQ(status(R"({"alg":"hs256"})"), AlgNotAllowed);
  EXPECT_EQ(status(R"({"alg":"HS256","crit":["exp"],"exp":1})"), Malformed);  // RFC 7515 §4.1.11
  EXPECT_EQ(statusOf(makeToken(Alg::HS256), keys, allowing({Alg::HS384})), AlgNotAllowed);
  EXPECT_EQ(statusOf(makeToken(Alg::HS256), keys, VerifyPolicy{}), AlgNotAllowed);
}

TEST(JwtVerify, PayloadMustBeAJsonObject) {
  const KeySet keys = keysFor(Alg::HS256);
  const std::string header = R"({"alg":"HS256"})";
  EXPECT_EQ(statusOf(rawToken(Alg::HS256, header, "[1,2]"), keys), NotAnObject);
  EXPECT_EQ(statusOf(rawToken(Alg::HS256, header, R"("claims")"), keys), NotAnObject);
  EXPECT_EQ(statusOf(rawToken(Alg::HS256, header, "1300819380"), keys), NotAnObject);
  EXPECT_EQ(statusOf(rawToken(Alg::HS256, header, "null"), keys), NotAnObject);
  EXPECT_EQ(statusOf(rawToken(Alg::HS256, header, "{\"exp\":"), keys), BadJson);
  EXPECT_EQ(statusOf(rawToken(Alg::HS256, header, ""), keys), BadJson);
}

TEST(JwtVerify, OversizedTokensAreRefusedBeforeParsing) {
  const KeySet keys = keysFor(Alg::HS256);
  Json claims = claimsValidNow();
  claims["pad"] = std::string(13000, 'p');
  const std::string token = makeToken(Alg::HS256, claims);
  ASSERT_GT(token.size(), 16u * 1024);
  const VerifyResult r = verify(token, keys, kEveryAlg, kNow);
  EXPECT_EQ(r.status, TooLarge);
  EXPECT_TRUE(r.header.is_null());
  VerifyPolicy bigger = kEveryAlg;
  bigger.max_token_bytes = 32 * 1024;
  EXPECT_EQ(statusOf(token, keys, bigger), Ok);
  EXPECT_EQ(statusOf(std::string(16 * 1024 + 1, 'a'), keys), TooLarge);
}

TEST(JwtVerify, EcdsaSignatureMustBeRawRAndSOfTheCurveSize) {
  const KeySet keys = keysFor(Alg::ES256);
  const std::string token = makeToken(Alg::ES256);
  const std::string input(signingInput(token));
  const std::string sig = signatureOf(token);
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_EQ(statusOf(input + "." + base64UrlEncode(sig.substr(0, 63)), keys), BadSignature);
  EXPECT_EQ(statusOf(input + "." + base64UrlEncode(sig + '\0'), keys), BadSignature);
  EXPECT_EQ(statusOf(input + "." + base64UrlEncode('\0' + sig), keys), BadSignature);
  EXPECT_EQ(statusOf(input + "." + base64UrlEncode(std::string(64, '\0')), keys), BadSignature);
  // The DER form OpenSSL produces is not the JWS form.
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, testKey("p256")), 1);
  unsigned char der[80];
  size_t der_len = sizeof(der);
  ASSERT_EQ(EVP_DigestSign(ctx, der, &der_len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()), 1);
  EVP_MD_CTX_free(ctx);
  const std::string der_sig(reinterpret_cast<char*>(der), der_len);
  EXPECT_EQ(statusOf(input + "." + base64UrlEncode(der_sig), keys), BadSignature);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(JwtVerify, ResultNamesItsStatus) {
  const VerifyResult r = verify("x", KeySet(), kEveryAlg, kNow);
  EXPECT_FALSE(r.ok());
  EXPECT_STREQ(statusName(r.status), "Malformed");
  EXPECT_STREQ(r.reason, "token does not have three parts");
  EXPECT_STREQ(statusName(TooLarge), "TooLarge");
  EXPECT_STREQ(statusName(Ok), "Ok");
}

}  // namespace
}  // namespace portico::auth::jwt
