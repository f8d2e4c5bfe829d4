#include "auth/authenticator.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt/base64url.hpp"

namespace portico::auth {
namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";  // 32 bytes: HS256 minimum

std::string hs256(const std::string& payload, const std::string& secret = kSecret) {
  std::string input = jwt::base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                      jwt::base64UrlEncode(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + jwt::base64UrlEncode(std::string(reinterpret_cast<char*>(mac), len));
}

config::Config makeConfig() {
  config::Config cfg;
  config::AuthProvider jwt;
  jwt.name = "corp";
  jwt.type = config::AuthProvider::Type::Jwt;
  jwt.jwt.algorithms = {"HS256"};
  jwt.jwt.secret = kSecret;
  jwt.jwt.issuer = "https://idp.test/";
  jwt.jwt.token_from = {{config::CredentialSource::Kind::Header, "authorization", "Bearer"},
                        {config::CredentialSource::Kind::Cookie, "access_token", ""}};
  jwt.jwt.forward_claims = {{"sub", "X-User-Id"}, {"scope", "X-User-Scopes"}};
  cfg.auth_providers.emplace("corp", jwt);
  config::AuthProvider keys;
  keys.name = "keys";
  keys.type = config::AuthProvider::Type::ApiKey;
  keys.api_key.from = {{config::CredentialSource::Kind::Header, "x-api-key", ""},
                       {config::CredentialSource::Kind::Query, "apikey", ""}};
  cfg.auth_providers.emplace("keys", keys);
  config::Consumer alice;
  alice.name = "alice";
  alice.groups = {"admins"};
  alice.api_keys = {"k-alice"};
  alice.jwt_subjects = {"alice"};
  cfg.consumers.push_back(alice);
  return cfg;
}

struct Fixture {
  config::Config cfg = makeConfig();
  std::vector<std::string> errors;
  Authenticator auth{cfg, errors};
  std::vector<uint32_t> both{static_cast<uint32_t>(auth.providerIndex("corp")),
                             static_cast<uint32_t>(auth.providerIndex("keys"))};
};

constexpr int64_t kNow = 1'800'000'000;

TEST(Authenticator, AcceptsValidBearerTokenAndMapsSubjectToConsumer) {
  Fixture f;
  ASSERT_TRUE(f.errors.empty());
  std::string bearer = "Bearer " + hs256(R"({"sub":"alice","iss":"https://idp.test/","exp":1900000000,"scope":"a b"})");
  http::HeaderField headers[] = {{"Authorization", bearer}};
  Identity id;
  AuthResult r = f.auth.authenticate(f.both, headers, "", kNow, nullptr, id);
  ASSERT_EQ(r.outcome, AuthOutcome::Ok) << r.message;
  ASSERT_NE(id.consumer, nullptr);
  EXPECT_EQ(id.consumer->name, "alice");
  EXPECT_EQ(claimHeaderValue(id.claimsOrNull(), "scope"), "a b");
}

TEST(Authenticator, TokenFromCookie) {
  Fixture f;
  std::string cookie = "theme=dark; access_token=" +
                       hs256(R"({"sub":"x","iss":"https://idp.test/","exp":1900000000})");
  http::HeaderField headers[] = {{"Cookie", cookie}};
  Identity id;
  EXPECT_EQ(f.auth.authenticate(f.both, headers, "", kNow, nullptr, id).outcome, AuthOutcome::Ok);
  EXPECT_EQ(id.consumer, nullptr);  // "x" names no consumer: authenticated, anonymous
}

TEST(Authenticator, RefusesBadTokensWithInvalidTokenChallenge) {
  Fixture f;
  for (const std::string& token :
       {hs256(R"({"iss":"https://idp.test/","exp":1900000000})", std::string(32, 'z')),
        hs256(R"({"iss":"https://idp.test/","exp":1700000000})"),
        hs256(R"({"iss":"https://evil.test/","exp":1900000000})"),
        hs256(R"({"iss":"https://idp.test/"})"), std::string("not.a.token")}) {
    std::string bearer = "Bearer " + token;
    http::HeaderField headers[] = {{"Authorization", bearer}};
    Identity id;
    AuthResult r = f.auth.authenticate(f.both, headers, "", kNow, nullptr, id);
    EXPECT_EQ(r.outcome, AuthOutcome::Unauthenticated) << token;
    EXPECT_NE(r.www_authenticate.find("error=\"invalid_token\""), std::string::npos);
  }
}

TEST(Authenticator, MissingCredentialsGetPlainChallenge) {
  Fixture f;
  Identity id;
  AuthResult r = f.auth.authenticate(f.both, {}, "", kNow, nullptr, id);
  EXPECT_EQ(r.outcome, AuthOutcome::Unauthenticated);
  EXPECT_EQ(r.www_authenticate, "Bearer realm=\"portico\"");
}

TEST(Authenticator, ApiKeyFromHeaderAndQuery) {
  Fixture f;
  http::HeaderField good[] = {{"X-API-Key", "k-alice"}};
  Identity id;
  ASSERT_EQ(f.auth.authenticate(f.both, good, "", kNow, nullptr, id).outcome, AuthOutcome::Ok);
  EXPECT_EQ(id.consumer->name, "alice");
  Identity by_query;
  EXPECT_EQ(f.auth.authenticate(f.both, {}, "x=1&apikey=k%2Dalice", kNow, nullptr, by_query).outcome,
            AuthOutcome::Ok);
  http::HeaderField bad[] = {{"X-API-Key", "k-alicf"}};
  Identity none;
  EXPECT_EQ(f.auth.authenticate(f.both, bad, "", kNow, nullptr, none).outcome,
            AuthOutcome::Unauthenticated);
}

TEST(Authenticator, AuthorizeScopesGroupsAndClaims) {
  Fixture f;
  Identity id;
  id.consumer = &f.cfg.consumers[0];
  id.claims = std::make_shared<const jwt::Json>(
      jwt::Json::parse(R"({"scope":"users:read users:write","tenant":"acme","n":3})"));
  config::Authorize rules;
  rules.scopes = {"users:read"};
  rules.groups = {"admins", "ops"};
  rules.claims = {{"tenant", "acme"}, {"n", "3"}};
  EXPECT_EQ(f.auth.authorize(rules, id).outcome, AuthOutcome::Ok);
  rules.scopes = {"users:delete"};
  EXPECT_EQ(f.auth.authorize(rules, id).outcome, AuthOutcome::Forbidden);
  rules.scopes = {"users"};  // a prefix of a granted scope is not that scope
  EXPECT_EQ(f.auth.authorize(rules, id).outcome, AuthOutcome::Forbidden);
  rules.scopes = {};
  rules.groups = {"ops"};
  EXPECT_EQ(f.auth.authorize(rules, id).outcome, AuthOutcome::Forbidden);
  rules.groups = {};
  rules.claims = {{"tenant", "globex"}};
  EXPECT_EQ(f.auth.authorize(rules, id).outcome, AuthOutcome::Forbidden);
}

TEST(Authenticator, CachedTokenIsNotVerifiedAgainAndExpiresWithExp) {
  Fixture f;
  auto cache = f.auth.makeCache();
  std::string bearer = "Bearer " + hs256(R"({"sub":"alice","iss":"https://idp.test/","exp":1800000100})");
  http::HeaderField headers[] = {{"Authorization", bearer}};
  uint32_t corp = f.both[0];
  Identity first;
  ASSERT_EQ(f.auth.authenticate(f.both, headers, "", kNow, cache.get(), first).outcome,
            AuthOutcome::Ok);
  EXPECT_EQ(cache->size(corp), 1u);
  Identity second;
  ASSERT_EQ(f.auth.authenticate(f.both, headers, "", kNow + 50, cache.get(), second).outcome,
            AuthOutcome::Ok);
  EXPECT_EQ(second.claims.get(), first.claims.get());  // the cached claims, not a new parse
  EXPECT_EQ(second.consumer, first.consumer);
  // Past exp the cache does not answer, and verification refuses the token.
  Identity late;
  EXPECT_EQ(f.auth.authenticate(f.both, headers, "", kNow + 100, cache.get(), late).outcome,
            AuthOutcome::Unauthenticated);
}

TEST(TokenCache, EvictsTheOldestWhenFull) {
  TokenCache cache(1, 2);
  cache.insert(0, "a", {nullptr, nullptr, 100});
  cache.insert(0, "b", {nullptr, nullptr, 100});
  cache.insert(0, "c", {nullptr, nullptr, 100});
  EXPECT_EQ(cache.size(0), 2u);
  EXPECT_EQ(cache.find(0, "a", 0), nullptr);
  EXPECT_NE(cache.find(0, "b", 0), nullptr);
  EXPECT_NE(cache.find(0, "c", 0), nullptr);
  EXPECT_EQ(cache.find(0, "c", 100), nullptr);  // dead at its expiry
}

TEST(Authenticator, IdentityHeadersIncludeForwardedClaims) {
  Fixture f;
  const auto& names = f.auth.identityHeaders();
  for (const char* n : {"x-consumer-name", "x-consumer-groups", "x-user-id", "x-user-scopes"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
}

TEST(ClaimHeaderValue, NeverProducesHeaderSyntax) {
  auto claims = jwt::Json::parse(R"({"a":"x\r\nX-Evil: 1","b":["s1","s2"],"c":7,"d":{"e":1}})");
  EXPECT_EQ(claimHeaderValue(claims, "a"), "");
  EXPECT_EQ(claimHeaderValue(claims, "b"), "s1 s2");
  EXPECT_EQ(claimHeaderValue(claims, "c"), "7");
  EXPECT_EQ(claimHeaderValue(claims, "d"), "");
  EXPECT_EQ(claimHeaderValue(claims, "missing"), "");
}

TEST(FindCredential, PrefixMustMatchWithASpace) {
  config::CredentialSource bearer{config::CredentialSource::Kind::Header, "authorization",
                                  "Bearer"};
  std::string scratch;
  http::HeaderField a[] = {{"Authorization", "bearer abc"}};
  EXPECT_EQ(findCredential(bearer, a, "", scratch), "abc");
  http::HeaderField b[] = {{"Authorization", "Bearerabc"}};
  EXPECT_EQ(findCredential(bearer, b, "", scratch), "");
  http::HeaderField c[] = {{"Authorization", "Basic abc"}};
  EXPECT_EQ(findCredential(bearer, c, "", scratch), "");
}

}  // namespace
}  // namespace portico::auth
