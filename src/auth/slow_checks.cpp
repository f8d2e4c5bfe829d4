// The providers whose check is too slow for a worker thread: HTTP Basic against crypt(3) hashes
// (bcrypt at cost 12 takes about 250 ms) and OAuth2 token introspection (RFC 7662: a call to the
// IdP). On a worker they are answered from the per-worker cache of earlier answers; a miss is
// Pending, checked on the verify pool by checkSlowly(), and the answer comes back to the worker
// through completeSlowCheck(), which remembers it.

#include <crypt.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "auth/authenticator.hpp"
#include "auth/blocking_http.hpp"
#include "auth/credentials.hpp"
#include "auth/jwt/json.hpp"

namespace portico::auth {

using namespace detail;

namespace {

// A successful password check is remembered this long; a failed one briefly, so that a client
// retrying a wrong password does not keep the pool busy.
constexpr int64_t kPasswordOkMs = 300'000;
constexpr int64_t kPasswordBadMs = 5'000;

// Slow checks are cached to the millisecond: a 1 s TTL must not end at the next whole second.
int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t toMs(config::Duration d) { return static_cast<int64_t>(d.count()); }

// Used for unknown users, so that they cost a hash too and do not stand out by timing.
constexpr const char* kDummyHash =
    "$6$portico.dummy$J8yRi3qDqLfv5ns3HJ7fOyBzyvjtztRHe/"
    "G5QRyDw8nZXsOm7gLE43i2FnHPFSm7brmNRMs8pqFEM5Za"
    "sIaBq/";

bool equalsIgnoreCasePrefix(std::string_view value, std::string_view prefix) {
  if (value.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (http::asciiLower(value[i]) != http::asciiLower(prefix[i])) return false;
  }
  return true;
}

int base64Digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// RFC 4648 §4, padding optional.
bool decodeBase64(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  out.clear();
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    int v = base64Digit(c);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return count < 6;
}

std::string encodeBase64(std::string_view in) {
  static constexpr char kDigits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(kDigits[(n >> shift) & 63]);
  }
  if (i < in.size()) {
    uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint8_t>(in[i + 1]) << 8;
    out.push_back(kDigits[(n >> 18) & 63]);
    out.push_back(kDigits[(n >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kDigits[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// application/x-www-form-urlencoded (RFC 6749 §2.3.1 asks for it in client credentials too).
std::string formEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : in) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

}  // namespace

Authenticator::Attempt Authenticator::fromCache(uint32_t index, std::string_view credential,
                                                TokenCache* cache, Identity& out) const {
  if (cache == nullptr) return Attempt::Pending;
  // Keyed by a digest: the cache never holds a password or a token.
  const Digest digest = sha256(credential);
  const TokenCache::Entry* hit = cache->find(index, viewOf(digest), nowMs());
  if (hit == nullptr) return Attempt::Pending;
  if (!hit->active) return Attempt::Rejected;
  out.provider = providers_[index].config;
  out.consumer = hit->consumer;
  out.claims = hit->claims;
  return Attempt::Accepted;
}

Authenticator::Attempt Authenticator::tryBasic(uint32_t index, http::HeaderList headers,
                                               TokenCache* cache, Identity& out,
                                               std::string& pending) const {
  const http::HeaderField* authorization = http::findHeader(headers, "authorization");
  if (authorization == nullptr || !equalsIgnoreCasePrefix(authorization->value, "basic ")) {
    return Attempt::NoCredential;
  }
  std::string_view encoded = authorization->value.substr(6);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  std::string decoded;
  // RFC 7617 §2: user-id ":" password; a user-id never holds a colon, and neither holds control
  // characters (a NUL would end the password early for crypt(3): "pw\0junk" must not be "pw").
  if (!decodeBase64(encoded, decoded) || decoded.find(':') == std::string::npos ||
      std::any_of(decoded.begin(), decoded.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    return Attempt::Rejected;
  }
  Attempt attempt = fromCache(index, decoded, cache, out);
  if (attempt == Attempt::Pending) pending = std::move(decoded);
  return attempt;
}

Authenticator::Attempt Authenticator::tryIntrospection(uint32_t index, http::HeaderList headers,
                                                       std::string_view query,
                                                       TokenCache* cache, Identity& out,
                                                       std::string& pending) const {
  std::string scratch;
  std::string_view token = firstCredential(providers_[index].config->introspection.token_from,
                                           headers, query, scratch);
  if (token.empty()) return Attempt::NoCredential;
  Attempt attempt = fromCache(index, token, cache, out);
  if (attempt == Attempt::Pending) pending.assign(token);
  return attempt;
}

SlowCheckResult Authenticator::checkSlowly(uint32_t provider, const std::string& credential,
                                           int64_t now) const {
  const config::AuthProvider& config = *providers_[provider].config;
  if (config.type == config::AuthProvider::Type::Basic) {
    SlowCheckResult result = checkPassword(credential);
    result.cache_until_ms = nowMs() + (result.verdict == SlowCheckResult::Verdict::Accepted
                                           ? kPasswordOkMs
                                           : kPasswordBadMs);
    return result;
  }
  return introspect(config.introspection, credential, now);
}

// The most expensive of the consumers' hashes (bcrypt's cost is in its prefix, "$2b$12$"; the
// other schemes are taken as cheaper), used as it is: its salt and cost make the unknown user's
// check as slow as that consumer's, and a match for an unknown user is never accepted.
void Authenticator::chooseDummyHash(const std::vector<config::Consumer>& consumers) {
  dummy_hash_ = kDummyHash;
  int best_cost = -1;
  for (const auto& consumer : consumers) {
    const std::string& hash = consumer.basic_password_hash;
    if (hash.empty()) continue;
    int cost = 0;
    if (hash.size() > 7 && hash[0] == '$' && hash[1] == '2' && hash[3] == '$' && hash[6] == '$') {
      cost = (hash[4] - '0') * 10 + (hash[5] - '0');
    }
    if (cost > best_cost) {
      best_cost = cost;
      dummy_hash_ = hash;
    }
  }
}

SlowCheckResult Authenticator::checkPassword(const std::string& credential) const {
  SlowCheckResult result;
  size_t colon = credential.find(':');
  std::string user = credential.substr(0, colon);
  std::string password = credential.substr(colon + 1);
  auto it = by_username_.find(user);
  const config::Consumer* consumer = it == by_username_.end() ? nullptr : it->second;
  const std::string& hash = consumer != nullptr ? consumer->basic_password_hash : dummy_hash_;
  auto data = std::make_unique<crypt_data>();  // ~32 KiB of state: not on a thread's stack
  const char* computed = crypt_rn(password.c_str(), hash.c_str(), data.get(), sizeof *data);
  bool match = computed != nullptr && computed[0] != '*' && std::strlen(computed) == hash.size() &&
               CRYPTO_memcmp(computed, hash.data(), hash.size()) == 0;
  if (match && consumer != nullptr) {
    result.verdict = SlowCheckResult::Verdict::Accepted;
    result.consumer = consumer;
  }
  return result;
}

SlowCheckResult Authenticator::introspect(const config::IntrospectionProviderConfig& config,
                                          const std::string& token, int64_t now) const {
  SlowCheckResult result;
  result.verdict = SlowCheckResult::Verdict::Unavailable;
  // RFC 7662 §2.1, with client credentials as RFC 6749 §2.3.1 says.
  std::string headers = "Authorization: Basic " +
                        encodeBase64(formEncode(config.client_id) + ":" +
                                     formEncode(config.client_secret)) +
                        "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                        "Accept: application/json\r\n";
  std::string body = "token=" + formEncode(token) + "&token_type_hint=access_token";
  HttpGetResult response =
      httpRequest("POST", config.endpoint, headers, body, config.endpoint_ca, config.timeout);
  if (!response.ok) return result;  // down, slow, 4xx/5xx: never a pass
  auto claims = std::make_shared<jwt::Json>();
  if (!jwt::parseJson(response.body, *claims) || !claims->is_object()) return result;
  const jwt::Json* active = jwt::findMember(*claims, "active");
  if (active == nullptr || !active->is_boolean()) return result;  // not an RFC 7662 answer
  const int64_t now_ms = nowMs();
  result.verdict = SlowCheckResult::Verdict::Rejected;
  result.cache_until_ms = now_ms + toMs(config.negative_cache_ttl);
  if (!active->get<bool>()) return result;
  int64_t until = now_ms + toMs(config.cache_ttl);
  if (const jwt::Json* exp = jwt::findMember(*claims, "exp")) {
    auto value = jwt::numberValue(*exp);
    if (value && static_cast<int64_t>(*value) <= now) return result;  // active, yet expired
    if (value) until = std::min(until, static_cast<int64_t>(*value * 1000));
  }
  result.verdict = SlowCheckResult::Verdict::Accepted;
  result.cache_until_ms = until;
  if (const std::string* sub = jwt::findString(*claims, "sub")) {
    if (auto it = by_subject_.find(*sub); it != by_subject_.end()) result.consumer = it->second;
  }
  result.claims = std::move(claims);
  return result;
}

AuthResult Authenticator::completeSlowCheck(uint32_t provider, const std::string& credential,
                                            const SlowCheckResult& check, TokenCache* cache,
                                            Identity& out) const {
  const config::AuthProvider& config = *providers_[provider].config;
  const bool accepted = check.verdict == SlowCheckResult::Verdict::Accepted;
  if (cache != nullptr && check.cache_until_ms > nowMs() &&
      check.verdict != SlowCheckResult::Verdict::Unavailable) {
    const Digest digest = sha256(credential);
    cache->insert(provider, viewOf(digest),
                  {check.claims, check.consumer, check.cache_until_ms, accepted});
  }
  AuthResult result;
  result.refused_provider = static_cast<int32_t>(provider);
  if (accepted) {
    out.provider = &config;
    out.consumer = check.consumer;
    out.claims = check.claims;
    return result;
  }
  if (check.verdict == SlowCheckResult::Verdict::Unavailable) {
    result.outcome = AuthOutcome::Unavailable;
    result.message = "the identity provider could not be reached";
    return result;
  }
  result.outcome = AuthOutcome::Unauthenticated;
  result.message = "invalid credentials";
  result.www_authenticate = config.type == config::AuthProvider::Type::Basic
                                ? basicChallenge(config.basic.realm)
                                : bearerChallenge(true, "the token is not active");
  return result;
}

}  // namespace portico::auth
