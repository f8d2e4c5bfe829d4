#include "auth/jwt/jwk.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <array>

#include "auth/jwt/base64url.hpp"
#include "auth/jwt/openssl_util.hpp"

namespace portico::auth::jwt {
namespace {

using BnPtr = std::unique_ptr<BIGNUM, Deleter<&BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<&OSSL_PARAM_BLD_free>>;
using ParamsPtr = std::unique_ptr<OSSL_PARAM, Deleter<&OSSL_PARAM_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<&EVP_PKEY_CTX_free>>;

constexpr std::array<const char*, 13> kAlgNames = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
    "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
};

constexpr int kMinRsaBits = 2048;    // RFC 7518 §3.3, §3.5
constexpr int kMaxRsaBits = 16384;   // bounds the cost of one verification
constexpr size_t kMaxRsaExponentBytes = 8;  // OpenSSL refuses larger exponents for big moduli

struct CurveInfo {
  const char* jwk_name;   // "crv" (RFC 7518 §7.6)
  const char* group;      // OpenSSL group name
  Curve curve;
  size_t coordinate_bytes;
};

constexpr std::array<CurveInfo, 3> kCurves = {{
    {"P-256", "prime256v1", Curve::P256, 32},
    {"P-384", "secp384r1", Curve::P384, 48},
    {"P-521", "secp521r1", Curve::P521, 66},
}};

// Decodes the base64url string member `name` into `out`.
bool decodeMember(const Json& jwk, const char* name, std::string& out, std::string& error) {
  const std::string* text = findString(jwk, name);
  if (text == nullptr) {
    error = std::string("missing or non-string \"") + name + "\"";
    return false;
  }
  if (!base64UrlDecode(*text, out)) {
    error = std::string("\"") + name + "\" is not base64url";
    return false;
  }
  return true;
}

void stripLeadingZeros(std::string& bytes) {
  const size_t first = bytes.find_first_not_of('\0');
  bytes.erase(0, first == std::string::npos ? bytes.size() : first);
}

EVP_PKEY* publicKeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  ParamsPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return pkey;
}

}  // namespace

std::optional<Alg> parseAlg(std::string_view name) {
  for (size_t i = 0; i < kAlgNames.size(); ++i) {
    if (name == kAlgNames[i]) return static_cast<Alg>(i);
  }
  return std::nullopt;
}

const char* algName(Alg alg) { return kAlgNames[static_cast<size_t>(alg)]; }

void Key::PkeyFree::operator()(EVP_PKEY* pkey) const { EVP_PKEY_free(pkey); }

Key::~Key() {
  if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
}

Key Key::fromSecret(std::string_view bytes, std::string kid, std::optional<Alg> alg) {
  Key key;
  key.type_ = KeyType::Oct;
  key.secret_.assign(bytes);
  key.kid_ = std::move(kid);
  key.alg_ = alg;
  return key;
}

const char* Key::typeMismatch(Alg alg) const {
  switch (alg) {
    case Alg::HS256: case Alg::HS384: case Alg::HS512:
      return type_ == KeyType::Oct ? nullptr : "HS* needs an oct key";
    case Alg::RS256: case Alg::RS384: case Alg::RS512:
    case Alg::PS256: case Alg::PS384: case Alg::PS512:
      return type_ == KeyType::Rsa ? nullptr : "RS* and PS* need an RSA key";
    case Alg::ES256: return curve_ == Curve::P256 ? nullptr : "ES256 needs a P-256 key";
    case Alg::ES384: return curve_ == Curve::P384 ? nullptr : "ES384 needs a P-384 key";
    case Alg::ES512: return curve_ == Curve::P521 ? nullptr : "ES512 needs a P-521 key";
    case Alg::EdDSA: return curve_ == Curve::Ed25519 ? nullptr : "EdDSA needs an Ed25519 key";
  }
  return "unknown alg";
}

const char* Key::mismatch(Alg alg) const {
  if (const char* why = typeMismatch(alg)) return why;
  if (alg_ && *alg_ != alg) return "the key is for another alg";
  if (!use_.empty() && use_ != "sig") return "the key's use is not sig";
  if (!ops_allow_verify_) return "the key's key_ops do not include verify";
  const size_t hmac_bytes =
      alg == Alg::HS256 ? 32 : alg == Alg::HS384 ? 48 : alg == Alg::HS512 ? 64 : 0;
  if (secret_.size() < hmac_bytes) return "HMAC key shorter than the hash output (RFC 7518 §3.2)";
  return nullptr;
}

std::optional<Key> Key::fromJwkText(std::string_view json_text, std::string& error) {
  Json jwk;
  if (!parseJson(json_text, jwk)) {
    error = "not valid JSON";
    return std::nullopt;
  }
  return fromJwk(jwk, error);
}

std::optional<Key> Key::fromJwk(const Json& jwk, std::string& error) {
  const ErrorMark mark;
  if (!jwk.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  Key key;
  if (const Json* kid = findMember(jwk, "kid")) {
    if (!kid->is_string()) {
      error = "\"kid\" is not a string";
      return std::nullopt;
    }
    key.kid_ = kid->get<std::string>();
  }
  if (const Json* use = findMember(jwk, "use")) {
    if (!use->is_string()) {
      error = "\"use\" is not a string";
      return std::nullopt;
    }
    key.use_ = use->get<std::string>();
  }
  if (const Json* ops = findMember(jwk, "key_ops")) {
    if (!ops->is_array()) {
      error = "\"key_ops\" is not an array";
      return std::nullopt;
    }
    key.ops_allow_verify_ = false;
    for (const Json& op : *ops) {
      if (!op.is_string()) {
        error = "\"key_ops\" holds a non-string";
        return std::nullopt;
      }
      if (op.get_ref<const std::string&>() == "verify") key.ops_allow_verify_ = true;
    }
  }

  const std::string* kty = findString(jwk, "kty");
  if (kty == nullptr) {
    error = "missing or non-string \"kty\"";
    return std::nullopt;
  }
  std::string a;  // decoded members, reused
  std::string b;
  if (*kty == "RSA") {
    // RFC 7518 §6.3.1: n and e are unsigned big-endian integers. Leading zero octets are
    // tolerated (some issuers emit them) but do not count towards the modulus size.
    if (!decodeMember(jwk, "n", a, error) || !decodeMember(jwk, "e", b, error)) return std::nullopt;
    stripLeadingZeros(a);
    stripLeadingZeros(b);
    BnPtr n(BN_bin2bn(reinterpret_cast<const unsigned char*>(a.data()),
                      static_cast<int>(a.size()), nullptr));
    BnPtr e(BN_bin2bn(reinterpret_cast<const unsigned char*>(b.data()),
                      static_cast<int>(b.size()), nullptr));
    if (n == nullptr || e == nullptr) {
      error = "out of memory";
      return std::nullopt;
    }
    const int bits = BN_num_bits(n.get());
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      error = "RSA modulus of " + std::to_string(bits) + " bits (2048 to 16384 are accepted)";
      return std::nullopt;
    }
    if (b.size() > kMaxRsaExponentBytes || !BN_is_odd(e.get()) || BN_is_one(e.get())) {
      error = "bad RSA public exponent";
      return std::nullopt;
    }
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (bld == nullptr || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
      error = "out of memory";
      return std::nullopt;
    }
    key.pkey_.reset(publicKeyFromParams("RSA", bld.get()));
    if (key.pkey_ == nullptr) {
      error = "OpenSSL refused the RSA key";
      return std::nullopt;
    }
    key.type_ = KeyType::Rsa;
  } else if (*kty == "EC") {
    const std::string* crv = findString(jwk, "crv");
    const CurveInfo* info = nullptr;
    for (const CurveInfo& c : kCurves) {
      if (crv != nullptr && *crv == c.jwk_name) info = &c;
    }
    if (info == nullptr) {
      error = "unsupported or missing EC \"crv\"";
      return std::nullopt;
    }
    if (!decodeMember(jwk, "x", a, error) || !decodeMember(jwk, "y", b, error)) return std::nullopt;
    // RFC 7518 §6.2.1.2-3: each coordinate is the full size of a field element, zero-padded.
    if (a.size() != info->coordinate_bytes || b.size() != info->coordinate_bytes) {
      error = std::string("EC x and y must be ") + std::to_string(info->coordinate_bytes) +
              " bytes for " + info->jwk_name;
      return std::nullopt;
    }
    // SEC 1 §2.3.3 uncompressed point: 0x04 || x || y.
    std::string point;
    point.reserve(1 + a.size() + b.size());
    point.push_back('\x04');
    point += a;
    point += b;
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (bld == nullptr ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, info->group, 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
      error = "out of memory";
      return std::nullopt;
    }
    // Loading decodes the point, which fails when it is not on the curve; the public check
    // then repeats that and also refuses the point at infinity and points outside the group
    // (SP 800-56A §5.6.2.3.3), so a key cannot be used for an invalid-curve attack.
    key.pkey_.reset(publicKeyFromParams("EC", bld.get()));
    PkeyCtxPtr check(key.pkey_ ? EVP_PKEY_CTX_new_from_pkey(nullptr, key.pkey_.get(), nullptr)
                               : nullptr);
    if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
      error = "EC point is not on the curve";
      return std::nullopt;
    }
    key.type_ = KeyType::Ec;
    key.curve_ = info->curve;
  } else if (*kty == "OKP") {
    // RFC 8037 §2: x is the raw public key. Ed448 and the X* (ECDH) curves are not for JWS here.
    const std::string* crv = findString(jwk, "crv");
    if (crv == nullptr || *crv != "Ed25519") {
      error = "unsupported or missing OKP \"crv\" (only Ed25519)";
      return std::nullopt;
    }
    if (!decodeMember(jwk, "x", a, error)) return std::nullopt;
    if (a.size() != 32) {
      error = "Ed25519 \"x\" must be 32 bytes";
      return std::nullopt;
    }
    key.pkey_.reset(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(a.data()), a.size()));
    if (key.pkey_ == nullptr) {
      error = "OpenSSL refused the Ed25519 key";
      return std::nullopt;
    }
    key.type_ = KeyType::Okp;
    key.curve_ = Curve::Ed25519;
  } else if (*kty == "oct") {
    if (!decodeMember(jwk, "k", key.secret_, error)) return std::nullopt;
    if (key.secret_.empty()) {
      error = "empty oct \"k\"";
      return std::nullopt;
    }
    key.type_ = KeyType::Oct;
  } else {
    error = "unsupported \"kty\" \"" + *kty + "\"";
    return std::nullopt;
  }

  if (const Json* alg = findMember(jwk, "alg")) {
    const std::optional<Alg> parsed =
        alg->is_string() ? parseAlg(alg->get_ref<const std::string&>()) : std::nullopt;
    if (!parsed) {
      error = alg->is_string() ? "unsupported \"alg\" \"" + alg->get<std::string>() + "\""
                               : std::string("\"alg\" is not a string");
      return std::nullopt;
    }
    // The key type must suit the alg it names; use/key_ops problems surface at verify time.
    if (const char* why = key.typeMismatch(*parsed)) {
      error = std::string("\"alg\" ") + algName(*parsed) + " does not fit the key: " + why;
      return std::nullopt;
    }
    key.alg_ = parsed;
  }
  return key;
}

bool Key::sameAs(const Key& other) const {
  if (type_ != other.type_ || curve_ != other.curve_ || alg_ != other.alg_ ||
      ops_allow_verify_ != other.ops_allow_verify_ || kid_ != other.kid_ || use_ != other.use_ ||
      secret_ != other.secret_) {
    return false;
  }
  if (!pkey_ || !other.pkey_) return !pkey_ && !other.pkey_;
  return EVP_PKEY_eq(pkey_.get(), other.pkey_.get()) == 1;
}

bool KeySet::sameAs(const KeySet& other) const {
  if (keys_.size() != other.keys_.size()) return false;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (!keys_[i].sameAs(other.keys_[i])) return false;
  }
  return true;
}

const Key* KeySet::find(std::string_view kid) const {
  for (const Key& key : keys_) {
    if (key.kid() == kid) return &key;
  }
  return nullptr;
}

JwksResult parseJwks(std::string_view json_text) {
  JwksResult result;
  Json doc;
  if (!parseJson(json_text, doc)) {
    result.errors.emplace_back("JWKS is not valid JSON");
    return result;
  }
  const Json* keys = findMember(doc, "keys");
  if (keys == nullptr || !keys->is_array()) {
    result.errors.emplace_back("JWKS has no \"keys\" array");
    return result;
  }
  result.document_ok = true;
  for (size_t i = 0; i < keys->size(); ++i) {
    const Json& jwk = (*keys)[i];
    std::string error;
    std::optional<Key> key = Key::fromJwk(jwk, error);
    if (key) {
      result.keys.add(std::move(*key));
      continue;
    }
    std::string message = "keys[" + std::to_string(i) + "]";
    if (const std::string* kid = findString(jwk, "kid")) message += " (kid \"" + *kid + "\")";
    result.errors.push_back(message + ": " + error);
  }
  return result;
}

}  // namespace portico::auth::jwt
