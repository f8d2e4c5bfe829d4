// Fuzz target: the JWT verifier (src/auth/jwt/verifier.hpp) on attacker-chosen tokens, against a
// fixed key set (the public keys of RFC 7515 A.1-A.4 and RFC 8037 A.4, and one HMAC secret).
// Tokens are checked in two ways: as raw text (structure, base64url, header JSON, algorithm and
// key selection, signatures), and, since a mutated token no longer verifies, also built from
// header and claims JSON and signed here with the HMAC secret, which reaches the claims checks.
//
// Input: byte 0 — bit 0: 0 = the rest is a token, 1 = the rest is "<header JSON>\n<claims JSON>"
// to sign; bits 1-2: the policy; bit 3: the clock; bits 4-5: the HMAC hash used for signing.

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth/jwt/base64url.hpp"
#include "auth/jwt/jwk.hpp"
#include "auth/jwt/verifier.hpp"
#include "fuzz_util.hpp"

namespace {

using namespace portico;
using namespace portico::auth::jwt;

constexpr int64_t kRfcNow = 1300819000;  // the RFC 7515 examples expire at 1300819380
constexpr int64_t kLaterNow = 1900000000;
constexpr std::string_view kSecret = "portico-fuzz-hmac-secret: 64 bytes or more, so that HS512 may use it too";

// The published public keys; without a kid, so every token may try each that fits its alg.
constexpr const char* kJwks = R"({"keys":[
 {"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},
 {"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},
 {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
 {"kty":"EC","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"},
 {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
]})";

const KeySet& keys() {
  static const KeySet set = [] {
    JwksResult r = parseJwks(kJwks);
    FUZZ_CHECK(r.document_ok && r.errors.empty() && r.keys.size() == 5);
    r.keys.add(Key::fromSecret(kSecret, "fuzz"));
    return std::move(r.keys);
  }();
  return set;
}

VerifyPolicy policy(unsigned which) {
  VerifyPolicy p;
  switch (which) {
    case 0:  // everything Portico verifies, no claim required
      p.algorithms = {Alg::HS256, Alg::HS384, Alg::HS512, Alg::RS256, Alg::RS384,
                      Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256,
                      Alg::ES384, Alg::ES512, Alg::EdDSA};
      p.require_exp = false;
      break;
    case 1:
      p.algorithms = {Alg::HS256, Alg::RS256, Alg::ES256, Alg::HS512};
      p.issuer = "joe";
      p.leeway = std::chrono::seconds(30);
      break;
    case 2:
      p.algorithms = {Alg::HS256, Alg::HS384, Alg::EdDSA, Alg::ES512};
      p.issuer = "https://issuer.example";
      p.audiences = {"api", "web"};
      p.max_token_bytes = 512;
      break;
    default:  // accepts nothing
      break;
  }
  return p;
}

std::string hmacToken(std::string_view header, std::string_view claims, unsigned hash) {
  std::string token = base64UrlEncode(header) + "." + base64UrlEncode(claims);
  const EVP_MD* md = hash == 1 ? EVP_sha384() : hash == 2 ? EVP_sha512() : EVP_sha256();
  // hash 3 signs with another secret: a token the verifier must refuse.
  const std::string_view secret = hash == 3 ? std::string_view("not the key") : kSecret;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  FUZZ_CHECK(HMAC(md, secret.data(), static_cast<int>(secret.size()),
                  reinterpret_cast<const unsigned char*>(token.data()), token.size(), mac,
                  &mac_len) != nullptr);
  token += ".";
  token += base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
  return token;
}

void checkResult(const VerifyResult& r, std::string_view token, const VerifyPolicy& p) {
  FUZZ_CHECK(r.reason != nullptr);
  FUZZ_CHECK(std::string_view(statusName(r.status)) != "Unknown");
  // verify() leaves nothing on OpenSSL's queue: TLS code on the same thread reads it.
  FUZZ_CHECK(ERR_peek_error() == 0);
  if (!r.ok()) return;
  FUZZ_CHECK(token.size() <= p.max_token_bytes);
  FUZZ_CHECK(r.header.is_object() && r.claims.is_object());
  const std::string* alg = findString(r.header, "alg");
  FUZZ_CHECK(alg != nullptr && parseAlg(*alg) && p.allows(*parseAlg(*alg)));
  FUZZ_CHECK(findMember(r.header, "crit") == nullptr);
  if (p.require_exp) FUZZ_CHECK(findMember(r.claims, "exp") != nullptr);
  if (p.issuer) {
    const std::string* iss = findString(r.claims, "iss");
    FUZZ_CHECK(iss != nullptr && *iss == *p.issuer);
  }
  if (!p.audiences.empty()) FUZZ_CHECK(findMember(r.claims, "aud") != nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const KeySet& key_set = keys();
  fuzz::InputReader in(data, size);
  const uint8_t control = in.byte();
  const VerifyPolicy p = policy((control >> 1) & 3);
  const int64_t now = (control & 8) != 0 ? kLaterNow : kRfcNow;

  std::string token;
  if ((control & 1) == 0) {
    token.assign(in.rest());
  } else {
    const std::string_view text = in.rest();
    const size_t nl = text.find('\n');
    const std::string_view header = text.substr(0, nl);
    const std::string_view claims = nl == std::string_view::npos ? "{}" : text.substr(nl + 1);
    token = hmacToken(header, claims, (control >> 4) & 3);
  }
  const VerifyResult r = verify(token, key_set, p, now);
  checkResult(r, token, p);
  if ((control & 1) != 0 && ((control >> 4) & 3) == 3) FUZZ_CHECK(!r.ok());
  return 0;
}
