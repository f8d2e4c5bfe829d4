#include "auth/jwt/verifier.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <memory>

#include "auth/jwt/base64url.hpp"
#include "auth/jwt/openssl_util.hpp"

namespace portico::auth::jwt {
namespace {

using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<&EVP_MD_CTX_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, Deleter<&EVP_MAC_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<&ECDSA_SIG_free>>;

constexpr std::array<const char*, 17> kStatusNames = {
    "Ok",           "Malformed",      "BadBase64",     "BadJson",       "NotAnObject",
    "AlgNone",      "AlgNotAllowed",  "AlgKeyMismatch", "UnknownKid",   "BadSignature",
    "Expired",      "NotYetValid",    "IssuedInFuture", "WrongIssuer",  "WrongAudience",
    "MissingExp",   "TooLarge",
};

enum class Family : uint8_t { Hmac, RsaPkcs1, RsaPss, Ecdsa, EdDsa };

Family familyOf(Alg alg) {
  switch (alg) {
    case Alg::HS256: case Alg::HS384: case Alg::HS512: return Family::Hmac;
    case Alg::RS256: case Alg::RS384: case Alg::RS512: return Family::RsaPkcs1;
    case Alg::PS256: case Alg::PS384: case Alg::PS512: return Family::RsaPss;
    case Alg::ES256: case Alg::ES384: case Alg::ES512: return Family::Ecdsa;
    case Alg::EdDSA: return Family::EdDsa;
  }
  return Family::EdDsa;
}

// The SHA-2 size in bits each algorithm name ends with; 0 for EdDSA (Ed25519 hashes itself).
int shaBits(Alg alg) {
  switch (alg) {
    case Alg::HS256: case Alg::RS256: case Alg::PS256: case Alg::ES256: return 256;
    case Alg::HS384: case Alg::RS384: case Alg::PS384: case Alg::ES384: return 384;
    case Alg::HS512: case Alg::RS512: case Alg::PS512: case Alg::ES512: return 512;
    case Alg::EdDSA: return 0;
  }
  return 0;
}

const EVP_MD* digestOf(Alg alg) {
  switch (shaBits(alg)) {
    case 256: return EVP_sha256();
    case 384: return EVP_sha384();
    case 512: return EVP_sha512();
    default: return nullptr;
  }
}

bool verifyHmac(Alg alg, std::string_view secret, std::string_view input,
                std::string_view signature) {
  // Fetched once: a fetch per call would go through the provider store (and its lock).
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  const int bits = shaBits(alg);
  const char* digest_name = bits == 512 ? "SHA512" : bits == 384 ? "SHA384" : "SHA256";
  const OSSL_PARAM params[] = {
      // The parameter is only read; the API is not const-correct.
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
      OSSL_PARAM_construct_end(),
  };
  MacCtxPtr ctx(hmac != nullptr ? EVP_MAC_CTX_new(hmac) : nullptr);
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  if (ctx == nullptr ||
      EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                   params) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1 ||
      EVP_MAC_final(ctx.get(), mac, &mac_len, sizeof(mac)) != 1) {
    return false;
  }
  // The length is public (it is fixed by the alg); the bytes are compared in constant time so
  // the time taken does not tell a forger how many leading bytes were right.
  return signature.size() == mac_len && CRYPTO_memcmp(signature.data(), mac, mac_len) == 0;
}

bool verifyWithPkey(EVP_PKEY* pkey, const EVP_MD* md, bool pss, std::string_view input,
                    std::string_view signature) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (ctx == nullptr || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey) != 1) {
    return false;
  }
  // RFC 7518 §3.5: MGF1 with the same hash (OpenSSL's default) and a salt as long as the hash;
  // RSA_PSS_SALTLEN_DIGEST insists on exactly that length when verifying.
  if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()) == 1;
}

// RFC 7518 §3.4: a JWS ECDSA signature is R || S, each zero-padded to the coordinate size;
// OpenSSL verifies the DER ECDSA-Sig-Value of RFC 3279 §2.2.3.
bool verifyEcdsa(Alg alg, EVP_PKEY* pkey, std::string_view input, std::string_view signature) {
  const size_t half = alg == Alg::ES256 ? 32 : alg == Alg::ES384 ? 48 : 66;
  if (signature.size() != 2 * half) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(signature.data());
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw, static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(raw + half, static_cast<int>(half), nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  // SEQUENCE { INTEGER r, INTEGER s }: at most 3 + 2 * (2 + 67) bytes for P-521.
  unsigned char der[160];
  const int der_len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (der_len <= 0 || static_cast<size_t>(der_len) > sizeof(der)) return false;
  unsigned char* out = der;
  if (i2d_ECDSA_SIG(sig.get(), &out) != der_len) return false;
  return verifyWithPkey(pkey, digestOf(alg), false, input,
                        std::string_view(reinterpret_cast<const char*>(der), der_len));
}

bool equalsNone(std::string_view alg) {
  // "none" is case-sensitive like every alg, but "None" or "NONE" are refused as loudly.
  if (alg.size() != 4) return false;
  for (size_t i = 0; i < 4; ++i) {
    if ((alg[i] | 0x20) != "none"[i]) return false;
  }
  return true;
}

// exp, nbf and iat are NumericDates (RFC 7519 §2): JSON numbers, possibly non-integer.
enum class DateClaim : uint8_t { Absent, NotANumber, Present };

DateClaim dateClaim(const Json& claims, std::string_view name, double& value) {
  const Json* member = findMember(claims, name);
  if (member == nullptr) return DateClaim::Absent;
  const std::optional<double> number = numberValue(*member);
  if (!number) return DateClaim::NotANumber;
  value = *number;
  return DateClaim::Present;
}

bool audienceMatches(const Json& aud, const std::vector<std::string>& wanted, bool& well_typed) {
  well_typed = true;
  if (aud.is_string()) {
    return std::find(wanted.begin(), wanted.end(), aud.get_ref<const std::string&>()) !=
           wanted.end();
  }
  if (!aud.is_array()) {
    well_typed = false;
    return false;
  }
  bool found = false;
  for (const Json& entry : aud) {
    if (!entry.is_string()) {
      well_typed = false;
      return false;
    }
    const auto& name = entry.get_ref<const std::string&>();
    found = found || std::find(wanted.begin(), wanted.end(), name) != wanted.end();
  }
  return found;
}

}  // namespace

const char* statusName(VerifyStatus status) {
  const auto index = static_cast<size_t>(status);
  return index < kStatusNames.size() ? kStatusNames[index] : "Unknown";
}

bool VerifyPolicy::allows(Alg alg) const {
  return std::find(algorithms.begin(), algorithms.end(), alg) != algorithms.end();
}

bool verifySignature(Alg alg, const Key& key, std::string_view signing_input,
                     std::string_view signature) noexcept {
  if (!key.canVerify(alg)) return false;
  const ErrorMark mark;
  switch (familyOf(alg)) {
    case Family::Hmac:
      return verifyHmac(alg, key.secret(), signing_input, signature);
    case Family::RsaPkcs1:
    case Family::RsaPss:
      return verifyWithPkey(key.pkey(), digestOf(alg), familyOf(alg) == Family::RsaPss,
                            signing_input, signature);
    case Family::Ecdsa:
      return verifyEcdsa(alg, key.pkey(), signing_input, signature);
    case Family::EdDsa:
      // RFC 8037 §3.1: Ed25519 signs the message itself (no pre-hash), so no digest is given.
      return verifyWithPkey(key.pkey(), nullptr, false, signing_input, signature);
  }
  return false;
}

VerifyResult verify(std::string_view token, const KeySet& keys, const VerifyPolicy& policy,
                    int64_t now) noexcept {
  VerifyResult result;
  const auto fail = [&result](VerifyStatus status, const char* reason) {
    result.status = status;
    result.reason = reason;
    result.claims = Json();
    return std::move(result);
  };
  using enum VerifyStatus;

  if (token.size() > policy.max_token_bytes) return fail(TooLarge, "token too large");
  // RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature). Five
  // parts would be a JWE (RFC 7516 §7.1), which is not supported.
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return fail(Malformed, "token does not have three parts");
  if (token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(Malformed, "token has more than three parts");
  }
  const std::string_view header_text = token.substr(0, dot1);
  const std::string_view payload_text = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signing_input = token.substr(0, dot2);
  std::string header_bytes;
  std::string payload_bytes;
  std::string signature;
  if (!base64UrlDecode(header_text, header_bytes) ||
      !base64UrlDecode(payload_text, payload_bytes) ||
      !base64UrlDecode(token.substr(dot2 + 1), signature)) {
    return fail(BadBase64, "token part is not base64url");
  }

  Json& header = result.header;
  if (!parseJson(header_bytes, header)) return fail(BadJson, "header is not JSON");
  if (!header.is_object()) return fail(NotAnObject, "header is not a JSON object");
  const std::string* alg_name = findString(header, "alg");
  if (alg_name == nullptr) return fail(Malformed, "header has no string alg");
  // RFC 8725 §3.1-3.2: the alg comes from the attacker, so it only selects among what the
  // policy allows, and "none" (RFC 7518 §3.6) never passes.
  if (equalsNone(*alg_name)) return fail(AlgNone, "alg none is refused");
  const std::optional<Alg> alg = parseAlg(*alg_name);
  if (!alg || !policy.allows(*alg)) return fail(AlgNotAllowed, "alg not allowed");
  // RFC 7515 §4.1.11: a recipient that does not understand a listed extension must reject the
  // JWS. None is understood here (e.g. RFC 7797 "b64": false changes the signing input).
  if (findMember(header, "crit") != nullptr) return fail(Malformed, "crit is not supported");

  std::string_view kid;
  const Json* kid_member = findMember(header, "kid");
  if (kid_member != nullptr) {
    if (!kid_member->is_string()) return fail(Malformed, "kid is not a string");
    kid = kid_member->get_ref<const std::string&>();
  }
  bool kid_known = false;            // some key carries the token's kid
  bool candidate_seen = false;       // some key was eligible by kid
  const char* mismatch = nullptr;    // why the last eligible key did not fit the alg
  bool tried = false;
  bool verified = false;
  for (const Key& key : keys.keys()) {
    if (kid_member != nullptr && !key.kid().empty() && key.kid() != kid) continue;
    kid_known = kid_known || (kid_member != nullptr && key.kid() == kid);
    candidate_seen = true;
    if (const char* why = key.mismatch(*alg)) {
      mismatch = why;
      continue;
    }
    tried = true;
    if (verifySignature(*alg, key, signing_input, signature)) {
      verified = true;
      break;
    }
  }
  if (!verified) {
    if (kid_member != nullptr && !kid_known && !tried) return fail(UnknownKid, "unknown kid");
    if (!tried) {
      return fail(AlgKeyMismatch, candidate_seen ? mismatch : "no key for this alg");
    }
    return fail(BadSignature, "signature does not verify");
  }

  Json& claims = result.claims;
  if (!parseJson(payload_bytes, claims)) return fail(BadJson, "payload is not JSON");
  if (!claims.is_object()) return fail(NotAnObject, "payload is not a JSON object");

  // RFC 7519 §4.1.4-4.1.6, with the policy's leeway in the token's favour.
  const double leeway = static_cast<double>(policy.leeway.count());
  const double at = static_cast<double>(now);
  double value = 0;
  switch (dateClaim(claims, "exp", value)) {
    case DateClaim::NotANumber: return fail(Malformed, "exp is not a number");
    case DateClaim::Absent:
      if (policy.require_exp) return fail(MissingExp, "token has no exp");
      break;
    case DateClaim::Present:
      if (value <= at - leeway) return fail(Expired, "token expired");
      break;
  }
  switch (dateClaim(claims, "nbf", value)) {
    case DateClaim::NotANumber: return fail(Malformed, "nbf is not a number");
    case DateClaim::Absent: break;
    case DateClaim::Present:
      if (value > at + leeway) return fail(NotYetValid, "token not yet valid");
      break;
  }
  switch (dateClaim(claims, "iat", value)) {
    case DateClaim::NotANumber: return fail(Malformed, "iat is not a number");
    case DateClaim::Absent: break;
    case DateClaim::Present:
      if (value > at + leeway) return fail(IssuedInFuture, "token issued in the future");
      break;
  }
  if (policy.issuer) {
    const std::string* iss = findString(claims, "iss");
    if (iss == nullptr || *iss != *policy.issuer) return fail(WrongIssuer, "wrong issuer");
  }
  if (!policy.audiences.empty()) {
    const Json* aud = findMember(claims, "aud");
    bool well_typed = true;
    if (aud == nullptr || !audienceMatches(*aud, policy.audiences, well_typed)) {
      return fail(WrongAudience, well_typed ? "wrong audience" : "aud is not a string or array");
    }
  }
  result.status = Ok;
  result.reason = "ok";
  return result;
}

}  // namespace portico::auth::jwt
