#pragma once
// Authentication and authorization for one config snapshot (SPEC §3 auth_providers, consumers,
// route auth/authorize). Built on the control thread, immutable afterwards, shared by workers.
// Default deny: a route names providers, and a request passes only if one of them accepts it.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/jwt/jwk.hpp"
#include "auth/jwt/json.hpp"
#include "auth/jwt/verifier.hpp"
#include "auth/token_cache.hpp"
#include "config/model.hpp"
#include "http/header.hpp"

namespace portico::tls {
struct PeerCertificate;
}

namespace portico::auth {

// Who a request was authenticated as. Filled by Authenticator::authenticate.
struct Identity {
  const config::Consumer* consumer = nullptr;  // null when the credential names no consumer
  const config::AuthProvider* provider = nullptr;
  std::shared_ptr<const jwt::Json> claims;  // the JWT payload; null for other providers

  const jwt::Json& claimsOrNull() const;
};

// Pending: a check too slow for a worker thread (a password hash, a call to the IdP) must run
// elsewhere (checkSlowly). Unavailable: the IdP could not answer (503, never a pass).
// Ambiguous: a credential occurs more than once (400: which one counts is not ours to guess).
enum class AuthOutcome : uint8_t {
  Ok,
  Unauthenticated,
  Forbidden,
  Pending,
  Unavailable,
  Ambiguous
};

// The answer of a slow check, made on a thread of the verify pool.
struct SlowCheckResult {
  enum class Verdict : uint8_t { Accepted, Rejected, Unavailable };
  Verdict verdict = Verdict::Rejected;
  const config::Consumer* consumer = nullptr;
  std::shared_ptr<const jwt::Json> claims;
  int64_t cache_until_ms = 0;  // unix ms; remembered by the worker until then (0: not at all)
};

struct AuthResult {
  AuthOutcome outcome = AuthOutcome::Ok;
  const char* message = "";       // for the JSON error body; never includes credentials
  std::string www_authenticate;   // set for Unauthenticated
  // A jwks_url provider met a token whose kid its key set lacks: its index (the caller asks for
  // a fresh key set), else -1.
  int32_t unknown_kid_provider = -1;
  // Pending: the provider and the credential (a token, or "user:password") to check slowly.
  int32_t pending_provider = -1;
  std::string pending_credential;
  // For the metrics: the provider that refused a credential (-1: none was given, or another
  // reason), and whether a JWT was refused for being past its exp.
  int32_t refused_provider = -1;
  bool expired = false;
};

class Authenticator {
 public:
  // Compiles providers (key sets, policies) and the consumer tables. Problems (a JWKS without
  // a usable key, ...) are appended to `errors`.
  Authenticator(const config::Config& config, std::vector<std::string>& errors);

  // Tries `providers` (indexes from providerIndex) in order; the first that accepts wins.
  // `cache` (may be null) remembers verified tokens; it must come from makeCache() of this
  // authenticator. `client_cert` is the connection's verified client certificate, if any.
  // `fetched_keys` holds, per provider index, the current key set of jwks_url providers.
  using FetchedKeys = std::vector<std::shared_ptr<const jwt::KeySet>>;
  AuthResult authenticate(const std::vector<uint32_t>& providers, http::HeaderList headers,
                          std::string_view query, int64_t now_seconds, TokenCache* cache,
                          Identity& out, const tls::PeerCertificate* client_cert = nullptr,
                          const FetchedKeys* fetched_keys = nullptr) const;
  size_t providerCount() const { return providers_.size(); }
  // True when one of `providers` is an mtls provider (the caller then looks up the client
  // certificate, which it does not do for other routes).
  bool needsClientCertificate(const std::vector<uint32_t>& providers) const;
  std::unique_ptr<TokenCache> makeCache() const;
  // Runs a Pending check; thread-safe, blocking (for the verify pool, never a worker).
  SlowCheckResult checkSlowly(uint32_t provider, const std::string& credential,
                              int64_t now_seconds) const;
  // Back on the worker: remembers the answer in `cache` and turns it into an outcome.
  AuthResult completeSlowCheck(uint32_t provider, const std::string& credential,
                               const SlowCheckResult& check, TokenCache* cache,
                               Identity& out) const;
  // Checks a route's authorize rules against an authenticated identity: Ok or Forbidden.
  AuthResult authorize(const config::Authorize& rules, const Identity& identity) const;

  // Index of a provider by name, or -1.
  int providerIndex(std::string_view name) const;
  const config::AuthProvider& provider(uint32_t index) const { return *providers_[index].config; }

  // Lowercased header names only the gateway may set: X-Consumer-Name, X-Consumer-Groups and
  // every forward_claims header. Removed from every client request before anything else.
  const std::vector<std::string>& identityHeaders() const { return identity_headers_; }

 private:
  struct Provider {
    const config::AuthProvider* config = nullptr;
    jwt::KeySet keys;
    jwt::VerifyPolicy policy;
  };
  enum class Attempt : uint8_t { NoCredential, Rejected, Accepted, Pending };

  Attempt tryJwt(uint32_t index, http::HeaderList headers, std::string_view query, int64_t now,
                 TokenCache* cache, const FetchedKeys* fetched_keys, Identity& out,
                 const char*& message, bool& unknown_kid) const;
  Attempt tryMtls(const Provider& p, const tls::PeerCertificate* client_cert,
                  Identity& out) const;
  Attempt tryApiKey(const Provider& p, http::HeaderList headers, std::string_view query,
                    Identity& out) const;
  // Basic and introspection: answered from `cache`, else Pending with `pending` set.
  Attempt tryBasic(uint32_t index, http::HeaderList headers, TokenCache* cache, Identity& out,
                   std::string& pending) const;
  Attempt tryIntrospection(uint32_t index, http::HeaderList headers, std::string_view query,
                           TokenCache* cache, Identity& out, std::string& pending) const;
  Attempt fromCache(uint32_t index, std::string_view credential, TokenCache* cache,
                    Identity& out) const;
  SlowCheckResult checkPassword(const std::string& credential) const;
  SlowCheckResult introspect(const config::IntrospectionProviderConfig& config,
                             const std::string& token, int64_t now) const;

  std::vector<Provider> providers_;
  std::unordered_map<std::string, uint32_t> provider_index_;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // SHA-256 of each API key -> its consumer; looked up with a string_view, no allocation.
  std::unordered_map<std::string, const config::Consumer*, StringHash, std::equal_to<>>
      by_key_hash_;
  std::unordered_map<std::string, const config::Consumer*> by_subject_;
  void addMtlsSubject(const std::string& subject, const config::Consumer& consumer);
  std::unordered_map<std::string, const config::Consumer*> by_mtls_subject_;  // typed
  std::unordered_map<std::string, const config::Consumer*> by_mtls_cn_fallback_;
  std::unordered_map<std::string, const config::Consumer*> by_username_;
  // Checked for unknown users, so they take as long as the slowest known one (review M5).
  void chooseDummyHash(const std::vector<config::Consumer>& consumers);
  std::string dummy_hash_;
  std::vector<std::string> identity_headers_;
};

// The credential named by `source` in a request, or empty. Query values are percent-decoded
// into `scratch`, which then backs the returned view.
std::string_view findCredential(const config::CredentialSource& source, http::HeaderList headers,
                                std::string_view query, std::string& scratch);

// A claim as a header value: strings as they are, arrays of strings joined by spaces, numbers
// and booleans as JSON. Empty when absent or when the value could break the header (CR, LF,
// other controls): a token's content never becomes header syntax.
std::string claimHeaderValue(const jwt::Json& claims, const std::string& claim);

}  // namespace portico::auth
