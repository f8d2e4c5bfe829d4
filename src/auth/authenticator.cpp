#include "auth/authenticator.hpp"

#include <openssl/evp.h>

#include <algorithm>

#include "auth/credentials.hpp"
#include "tls/server_context.hpp"

namespace portico::auth {

using namespace detail;

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool percentDecode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hexValue(in[i + 1]);
      int lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(in[i] == '+' ? ' ' : in[i]);
    }
  }
  return true;
}

bool isSafeHeaderValue(std::string_view v) {
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return false;
  }
  return true;
}


// How long a verified token without `exp` (require_exp: false) stays cached.
constexpr int64_t kNoExpCacheSeconds = 60;

bool repeatsCredential(const config::AuthProvider& provider, http::HeaderList headers,
                       std::string_view query) {
  using Type = config::AuthProvider::Type;
  static const std::vector<config::CredentialSource> kAuthorization{
      {config::CredentialSource::Kind::Header, "authorization", ""}};
  switch (provider.type) {
    case Type::Jwt: return credentialRepeated(provider.jwt.token_from, headers, query);
    case Type::ApiKey: return credentialRepeated(provider.api_key.from, headers, query);
    case Type::Introspection:
      return credentialRepeated(provider.introspection.token_from, headers, query);
    case Type::Basic: return credentialRepeated(kAuthorization, headers, query);
    case Type::Mtls: return false;
  }
  return false;
}

}  // namespace

const jwt::Json& Identity::claimsOrNull() const {
  static const jwt::Json kNull;
  return claims ? *claims : kNull;
}

std::unique_ptr<TokenCache> Authenticator::makeCache() const {
  return std::make_unique<TokenCache>(providers_.size());
}

std::string_view findCredential(const config::CredentialSource& source, http::HeaderList headers,
                                std::string_view query, std::string& scratch) {
  using Kind = config::CredentialSource::Kind;
  switch (source.kind) {
    case Kind::Header: {
      const http::HeaderField* h = http::findHeader(headers, source.name);
      if (h == nullptr) return {};
      std::string_view value = h->value;
      if (source.prefix.empty()) return trim(value);
      if (value.size() <= source.prefix.size() ||
          !http::equalsIgnoreCase(value.substr(0, source.prefix.size()), source.prefix) ||
          value[source.prefix.size()] != ' ') {
        return {};
      }
      return trim(value.substr(source.prefix.size() + 1));
    }
    case Kind::Cookie:
      return http::findCookie(headers, source.name);
    case Kind::Query: {
      std::string_view raw = http::findPair(query, '&', source.name);
      if (raw.empty() || !percentDecode(raw, scratch)) return {};
      return scratch;
    }
  }
  return {};
}

std::string claimHeaderValue(const jwt::Json& claims, const std::string& claim) {
  const jwt::Json* value = jwt::findMember(claims, claim);
  if (value == nullptr || value->is_null()) return {};
  std::string out;
  if (value->is_string()) {
    out = value->get<std::string>();
  } else if (value->is_array()) {
    for (const auto& item : *value) {
      if (!item.is_string()) return {};
      if (!out.empty()) out.push_back(' ');
      out += item.get<std::string>();
    }
  } else if (value->is_number() || value->is_boolean()) {
    out = value->dump();
  } else {
    return {};
  }
  return isSafeHeaderValue(out) ? out : std::string();
}

Authenticator::Authenticator(const config::Config& config, std::vector<std::string>& errors) {
  identity_headers_ = {"x-consumer-name", "x-consumer-groups"};
  for (const auto& [name, provider] : config.auth_providers) {
    Provider p;
    p.config = &provider;
    if (provider.type == config::AuthProvider::Type::Jwt) {
      const auto& jc = provider.jwt;
      for (const auto& alg : jc.algorithms) {
        if (auto a = jwt::parseAlg(alg)) p.policy.algorithms.push_back(*a);
      }
      if (!jc.issuer.empty()) p.policy.issuer = jc.issuer;
      p.policy.audiences = jc.audiences;
      p.policy.leeway = std::chrono::duration_cast<std::chrono::seconds>(jc.leeway);
      p.policy.require_exp = jc.require_exp;
      if (!jc.secret.empty()) {
        p.keys.add(jwt::Key::fromSecret(jc.secret));
      } else if (!jc.jwks_url.empty()) {
        // Fetched at run time: the workers hold the current set (FetchedKeys).
      } else {
        jwt::JwksResult jwks = jwt::parseJwks(jc.jwks_text);
        for (const auto& e : jwks.errors) {
          errors.push_back("auth provider \"" + name + "\": " + jc.jwks_file + ": " + e);
        }
        if (!jwks.document_ok || jwks.keys.empty()) {
          errors.push_back("auth provider \"" + name + "\": " + jc.jwks_file +
                           " holds no usable key");
        }
        p.keys = std::move(jwks.keys);
      }
      for (const auto& [claim, header] : jc.forward_claims) {
        std::string lower(header);
        for (char& c : lower) c = http::asciiLower(c);
        if (std::find(identity_headers_.begin(), identity_headers_.end(), lower) ==
            identity_headers_.end()) {
          identity_headers_.push_back(lower);
        }
      }
    }
    provider_index_.emplace(name, static_cast<uint32_t>(providers_.size()));
    providers_.push_back(std::move(p));
  }
  for (const auto& consumer : config.consumers) {
    for (const auto& key : consumer.api_keys) {
      by_key_hash_.emplace(std::string(viewOf(sha256(key))), &consumer);
    }
    for (const auto& digest : consumer.api_key_sha256) {
      by_key_hash_.emplace(std::string(reinterpret_cast<const char*>(digest.data()), 32),
                           &consumer);
    }
    for (const auto& sub : consumer.jwt_subjects) by_subject_.emplace(sub, &consumer);
    for (const auto& subject : consumer.mtls_subjects) addMtlsSubject(subject, consumer);
    if (!consumer.basic_username.empty()) by_username_.emplace(consumer.basic_username, &consumer);
  }
  chooseDummyHash(config.consumers);
}

int Authenticator::providerIndex(std::string_view name) const {
  auto it = provider_index_.find(std::string(name));
  return it == provider_index_.end() ? -1 : static_cast<int>(it->second);
}

Authenticator::Attempt Authenticator::tryJwt(uint32_t index, http::HeaderList headers,
                                             std::string_view query, int64_t now,
                                             TokenCache* cache, const FetchedKeys* fetched_keys,
                                             Identity& out, const char*& message,
                                             bool& unknown_kid) const {
  const Provider& p = providers_[index];
  std::string scratch;
  std::string_view token = firstCredential(p.config->jwt.token_from, headers, query, scratch);
  if (token.empty()) return Attempt::NoCredential;
  out.provider = p.config;
  if (cache != nullptr) {
    if (const TokenCache::Entry* hit = cache->find(index, token, now * 1000)) {
      out.claims = hit->claims;
      out.consumer = hit->consumer;
      return Attempt::Accepted;
    }
  }
  const jwt::KeySet* keys = &p.keys;
  if (!p.config->jwt.jwks_url.empty()) {
    static const jwt::KeySet kNoKeys;
    keys = fetched_keys != nullptr && index < fetched_keys->size() && (*fetched_keys)[index]
               ? (*fetched_keys)[index].get()
               : &kNoKeys;
  }
  jwt::VerifyResult result = jwt::verify(token, *keys, p.policy, now);
  if (!result.ok()) {
    message = result.reason;
    unknown_kid = result.status == jwt::VerifyStatus::UnknownKid ||
                  (keys->empty() && result.status == jwt::VerifyStatus::AlgKeyMismatch);
    return Attempt::Rejected;
  }
  out.claims = std::make_shared<const jwt::Json>(std::move(result.claims));
  out.consumer = nullptr;
  if (const std::string* sub = jwt::findString(*out.claims, "sub")) {
    auto it = by_subject_.find(*sub);
    if (it != by_subject_.end()) out.consumer = it->second;
  }
  if (cache != nullptr) {
    int64_t expires = now + kNoExpCacheSeconds;
    if (const jwt::Json* exp_claim = jwt::findMember(*out.claims, "exp")) {
      // Never beyond exp (plus the leeway the verifier allows past it).
      if (auto exp = jwt::numberValue(*exp_claim)) {
        expires = static_cast<int64_t>(*exp) + p.policy.leeway.count();
      }
    }
    cache->insert(index, token, {out.claims, out.consumer, expires * 1000});
  }
  return Attempt::Accepted;
}

Authenticator::Attempt Authenticator::tryApiKey(const Provider& p, http::HeaderList headers,
                                                std::string_view query, Identity& out) const {
  std::string scratch;
  std::string_view key = firstCredential(p.config->api_key.from, headers, query, scratch);
  if (key.empty()) return Attempt::NoCredential;
  // Looked up by digest: no byte-by-byte compare of the secret that timing could reveal.
  const Digest digest = sha256(key);
  auto it = by_key_hash_.find(viewOf(digest));
  if (it == by_key_hash_.end()) return Attempt::Rejected;
  out.provider = p.config;
  out.consumer = it->second;
  out.claims.reset();
  return Attempt::Accepted;
}

Authenticator::Attempt Authenticator::tryMtls(const Provider& p,
                                              const tls::PeerCertificate* client_cert,
                                              Identity& out) const {
  if (client_cert == nullptr) return Attempt::NoCredential;
  // The TLS layer verified the certificate against the listener's client_ca: it authenticates
  // by itself, and names a consumer when one of its names is listed in mtls_subjects.
  out.provider = p.config;
  out.consumer = nullptr;
  out.claims.reset();
  for (const auto& name : client_cert->names) {
    if (auto it = by_mtls_subject_.find(name); it != by_mtls_subject_.end()) {
      out.consumer = it->second;
      return Attempt::Accepted;
    }
  }
  // An untyped subject may name the CN of a certificate without SANs (RFC 6125 §6.4.4).
  if (!client_cert->has_san && !client_cert->names.empty()) {
    std::string_view cn = client_cert->names.back();
    if (cn.starts_with("cn:")) {
      if (auto it = by_mtls_cn_fallback_.find(std::string(cn.substr(3)));
          it != by_mtls_cn_fallback_.end()) {
        out.consumer = it->second;
      }
    }
  }
  return Attempt::Accepted;
}

// Subjects are typed ("dns:", "uri:", "email:", "cn:"). An untyped one takes the type its form
// says (a URI has "://", an email address "@", else a DNS name) and may also name the CN of a
// certificate that has no SANs, as mTLS set-ups written before types expect.
void Authenticator::addMtlsSubject(const std::string& subject, const config::Consumer& consumer) {
  for (std::string_view type : {"dns:", "uri:", "email:", "cn:"}) {
    if (subject.starts_with(type)) {
      by_mtls_subject_.emplace(subject, &consumer);
      return;
    }
  }
  const char* type = subject.find("://") != std::string::npos ? "uri:"
                     : subject.find('@') != std::string::npos ? "email:"
                                                              : "dns:";
  by_mtls_subject_.emplace(type + subject, &consumer);
  by_mtls_cn_fallback_.emplace(subject, &consumer);
}

bool Authenticator::needsClientCertificate(const std::vector<uint32_t>& providers) const {
  for (uint32_t index : providers) {
    if (providers_[index].config->type == config::AuthProvider::Type::Mtls) return true;
  }
  return false;
}

AuthResult Authenticator::authenticate(const std::vector<uint32_t>& providers,
                                       http::HeaderList headers, std::string_view query,
                                       int64_t now_seconds, TokenCache* cache, Identity& out,
                                       const tls::PeerCertificate* client_cert,
                                       const FetchedKeys* fetched_keys) const {
  bool any_jwt = false;
  bool any_api_key = false;
  const config::AuthProvider* basic = nullptr;
  int32_t unknown_kid_provider = -1;
  bool credential_seen = false;
  int32_t refused_provider = -1;
  const char* jwt_problem = nullptr;
  for (uint32_t index : providers) {
    const Provider& p = providers_[index];
    if (repeatsCredential(*p.config, headers, query)) {
      AuthResult result;
      result.outcome = AuthOutcome::Ambiguous;
      result.refused_provider = static_cast<int32_t>(index);
      result.message = "a credential is given more than once";
      return result;
    }
    Attempt attempt;
    if (p.config->type == config::AuthProvider::Type::Jwt) {
      any_jwt = true;
      const char* message = nullptr;
      bool unknown_kid = false;
      attempt = tryJwt(index, headers, query, now_seconds, cache, fetched_keys, out, message,
                       unknown_kid);
      if (attempt == Attempt::Rejected && jwt_problem == nullptr) jwt_problem = message;
      if (unknown_kid && !p.config->jwt.jwks_url.empty()) unknown_kid_provider = index;
    } else if (p.config->type == config::AuthProvider::Type::Mtls) {
      attempt = tryMtls(p, client_cert, out);
    } else if (p.config->type == config::AuthProvider::Type::Basic ||
               p.config->type == config::AuthProvider::Type::Introspection) {
      std::string pending;
      if (p.config->type == config::AuthProvider::Type::Basic) {
        if (basic == nullptr) basic = p.config;
        attempt = tryBasic(index, headers, cache, out, pending);
      } else {
        any_jwt = true;  // a bearer token, with the same challenge
        attempt = tryIntrospection(index, headers, query, cache, out, pending);
        if (attempt == Attempt::Rejected && jwt_problem == nullptr) {
          jwt_problem = "the token is not active";
        }
      }
      if (attempt == Attempt::Pending) {
        AuthResult result;
        result.outcome = AuthOutcome::Pending;
        result.pending_provider = static_cast<int32_t>(index);
        result.pending_credential = std::move(pending);
        return result;
      }
    } else {
      any_api_key = true;
      attempt = tryApiKey(p, headers, query, out);
    }
    if (attempt == Attempt::Accepted) return {};
    if (attempt == Attempt::Rejected && !credential_seen) {
      credential_seen = true;
      refused_provider = static_cast<int32_t>(index);
    }
  }
  AuthResult result;
  result.outcome = AuthOutcome::Unauthenticated;
  result.refused_provider = refused_provider;
  result.expired = jwt_problem != nullptr && std::string_view(jwt_problem) == "token expired";
  result.unknown_kid_provider = unknown_kid_provider;
  result.message = credential_seen ? "invalid credentials" : "credentials required";
  // A client certificate has no HTTP challenge: an mtls-only route answers without one.
  if (any_jwt) {
    result.www_authenticate =
        bearerChallenge(jwt_problem != nullptr, jwt_problem ? "the token is not valid" : "");
  } else if (basic != nullptr) {
    result.www_authenticate = basicChallenge(basic->basic.realm);
  } else if (any_api_key) {
    result.www_authenticate = "ApiKey realm=\"portico\"";
  }
  return result;
}

AuthResult Authenticator::authorize(const config::Authorize& rules,
                                    const Identity& identity) const {
  AuthResult denied{AuthOutcome::Forbidden, "not allowed", {}};
  if (!rules.scopes.empty()) {
    // RFC 8693 §4.2 `scope` is a space-separated string; some IdPs send `scp` as an array.
    std::string granted = " " + claimHeaderValue(identity.claimsOrNull(), "scope") + " " +
                          claimHeaderValue(identity.claimsOrNull(), "scp") + " ";
    for (const auto& scope : rules.scopes) {
      if (granted.find(" " + scope + " ") == std::string::npos) {
        denied.message = "missing a required scope";
        return denied;
      }
    }
  }
  if (!rules.groups.empty()) {
    bool member = false;
    if (identity.consumer != nullptr) {
      for (const auto& g : rules.groups) {
        const auto& mine = identity.consumer->groups;
        if (std::find(mine.begin(), mine.end(), g) != mine.end()) member = true;
      }
    }
    if (!member) {
      denied.message = "not in a permitted group";
      return denied;
    }
  }
  for (const auto& [claim, value] : rules.claims) {
    const jwt::Json* actual = jwt::findMember(identity.claimsOrNull(), claim);
    bool match = actual != nullptr && ((actual->is_string() && *actual == value) ||
                                       (!actual->is_string() && actual->dump() == value));
    if (!match) {
      denied.message = "a required claim does not match";
      return denied;
    }
  }
  return {};
}

}  // namespace portico::auth
