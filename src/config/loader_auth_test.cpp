// auth_providers, consumers, and a route's auth and authorize (SPEC §3).

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config/loader.hpp"

namespace portico::config {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kHead = R"(listeners:
  - address: 127.0.0.1:8080
upstreams:
  echo: {builtin: echo}
)";

// 32 bytes: the least HS256 accepts.
constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";

std::optional<std::string> testEnv(const std::string& name) {
  if (name == "ALICE_KEY") {
    return "alice-secret";
  }
  return std::nullopt;
}

std::string config(std::string_view sections, std::string_view auth = "auth: [p]") {
  return std::string(kHead) + std::string(sections) +
         "routes:\n  - match: {path_prefix: /}\n    upstream: echo\n    " + std::string(auth) +
         "\n";
}

std::string jwt(std::string_view body) {
  return "auth_providers:\n  p:\n    type: jwt\n" + std::string(body);
}

LoadResult load(const std::string& yaml, const std::string& file = "t.yaml") {
  return loadConfigString(yaml, file, testEnv);
}

// The messages (without positions), to check what is reported.
std::vector<std::string> messages(const std::string& yaml, const std::string& file = "t.yaml") {
  std::vector<std::string> out;
  for (const ConfigError& e : load(yaml, file).errors) {
    out.push_back(e.message);
  }
  return out;
}

std::string hsProvider(std::string_view algs = "[HS256]") {
  return jwt("    algorithms: " + std::string(algs) + "\n    secret: " + std::string(kSecret) +
             "\n");
}

TEST(ConfigAuth, JwtProviderWithDefaults) {
  LoadResult r = load(config(hsProvider()));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  const AuthProvider& p = r.config->auth_providers.at("p");
  EXPECT_EQ(p.name, "p");
  EXPECT_EQ(p.type, AuthProvider::Type::Jwt);
  EXPECT_EQ(p.jwt.algorithms, std::vector<std::string>{"HS256"});
  EXPECT_EQ(p.jwt.secret, kSecret);
  ASSERT_EQ(p.jwt.token_from.size(), 1u);
  EXPECT_EQ(p.jwt.token_from[0].kind, CredentialSource::Kind::Header);
  EXPECT_EQ(p.jwt.token_from[0].name, "authorization");
  EXPECT_EQ(p.jwt.token_from[0].prefix, "Bearer");
  EXPECT_EQ(p.jwt.leeway, 0s);
  EXPECT_TRUE(p.jwt.require_exp);
  const Route& route = r.config->routes[0];
  EXPECT_FALSE(route.auth_public);
  EXPECT_EQ(route.auth, std::vector<std::string>{"p"});
  EXPECT_FALSE(route.authorize);
}

TEST(ConfigAuth, JwtProviderWithEveryKey) {
  LoadResult r = load(config(jwt(R"(    issuer: https://idp/
    audiences: [api, web]
    algorithms: [HS384]
    secret_base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"
    token_from: ["header:X-Token", "cookie:at", "query:token", "header:Authorization:JWT"]
    leeway: 0s
    require_exp: false
    forward_claims: {sub: X-User-Id}
)")));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  const JwtProviderConfig& j = r.config->auth_providers.at("p").jwt;
  EXPECT_EQ(j.issuer, "https://idp/");
  EXPECT_EQ(j.audiences, (std::vector<std::string>{"api", "web"}));
  EXPECT_EQ(j.secret, "0123456789abcdef0123456789abcdef0123456789abcdef");
  ASSERT_EQ(j.token_from.size(), 4u);
  EXPECT_EQ(j.token_from[0].name, "x-token");
  EXPECT_EQ(j.token_from[0].prefix, "");
  EXPECT_EQ(j.token_from[1].kind, CredentialSource::Kind::Cookie);
  EXPECT_EQ(j.token_from[1].name, "at");
  EXPECT_EQ(j.token_from[2].kind, CredentialSource::Kind::Query);
  EXPECT_EQ(j.token_from[3].prefix, "JWT");
  EXPECT_FALSE(j.require_exp);
  ASSERT_EQ(j.forward_claims.size(), 1u);
  EXPECT_EQ(j.forward_claims[0], (std::pair<std::string, std::string>{"sub", "X-User-Id"}));
}

TEST(ConfigAuth, SecretBase64AcceptsBothAlphabets) {
  // 0xfb 0xff repeated: '+' and '/' in standard base64, '-' and '_' in url-safe.
  std::string raw(33, '\xfb');
  for (std::string_view encoded : {"+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7",
                                   "-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7"}) {
    SCOPED_TRACE(encoded);
    LoadResult r = load(config(jwt("    algorithms: [HS256]\n    secret_base64: \"" +
                                   std::string(encoded) + "\"\n")));
    ASSERT_TRUE(r.config) << r.errors[0].format();
    EXPECT_EQ(r.config->auth_providers.at("p").jwt.secret.size(), 33u);
  }
  EXPECT_EQ(messages(config(jwt("    algorithms: [HS256]\n    secret_base64: \"a*b\"\n"))),
            std::vector<std::string>{"invalid base64 in \"secret_base64\""});
}

TEST(ConfigAuth, AlgorithmsAreChecked) {
  EXPECT_EQ(messages(config(hsProvider("[HS256, none]"))),
            std::vector<std::string>{"algorithm \"none\" is never accepted"});
  EXPECT_EQ(messages(config(hsProvider("[NONE]"))),
            std::vector<std::string>{"algorithm \"NONE\" is never accepted"});
  EXPECT_EQ(messages(config(hsProvider("[HS265]"))),
            std::vector<std::string>{"unknown algorithm \"HS265\" (did you mean \"HS256\"?)"});
  EXPECT_EQ(messages(config(hsProvider("[]"))),
            std::vector<std::string>{"\"algorithms\" must not be empty"});
  EXPECT_EQ(messages(config(jwt("    secret: " + std::string(kSecret) + "\n"))),
            std::vector<std::string>{"missing required key \"algorithms\" in auth provider \"p\""});
}

TEST(ConfigAuth, SecretLengthFollowsTheHash) {
  EXPECT_TRUE(load(config(hsProvider("[HS256]"))).config);
  EXPECT_EQ(messages(config(jwt("    algorithms: [HS256]\n    secret: short\n"))),
            std::vector<std::string>{"the secret is 5 bytes, HS256 needs at least 32 (RFC 7518 "
                                     "§3.2: the key must be at least the hash size)"});
  EXPECT_EQ(messages(config(hsProvider("[HS256, HS512]"))),
            std::vector<std::string>{"the secret is 32 bytes, HS512 needs at least 64 (RFC 7518 "
                                     "§3.2: the key must be at least the hash size)"});
}

TEST(ConfigAuth, KeySourceIsExactlyOne) {
  EXPECT_EQ(messages(config(jwt("    algorithms: [HS256]\n"))),
            std::vector<std::string>{"auth provider \"p\" needs a key: \"secret\", "
                                     "\"secret_base64\", \"jwks_file\" or \"jwks_url\""});
  EXPECT_EQ(messages(config(jwt("    algorithms: [HS256]\n    secret: " + std::string(kSecret) +
                                "\n    jwks_file: /dev/null\n"))),
            std::vector<std::string>{
                "\"jwks_file\" cannot be combined with \"secret\" (use one of them)"});
  EXPECT_EQ(messages(config(jwt("    algorithms: [RS256]\n    jwks_file: /dev/null\n"
                                "    jwks_url: https://idp.example/jwks\n"))),
            std::vector<std::string>{
                "\"jwks_url\" cannot be combined with \"jwks_file\" (use one of them)"});
}

TEST(ConfigAuth, JwksUrlAndItsOptions) {
  auto r = load(config(jwt("    algorithms: [RS256]\n    jwks_url: https://idp.example/jwks\n"
                           "    refresh: 30s\n")));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->auth_providers.at("p").jwt.jwks_url, "https://idp.example/jwks");
  EXPECT_EQ(r.config->auth_providers.at("p").jwt.refresh, 30s);
  EXPECT_EQ(messages(config(jwt("    algorithms: [RS256]\n    jwks_url: ftp://idp.example/\n"))),
            std::vector<std::string>{"invalid value \"ftp://idp.example/\" for \"jwks_url\" (use "
                                     "an http:// or https:// URL)"});
  EXPECT_EQ(messages(config(jwt("    algorithms: [RS256]\n    jwks_url: http:///jwks\n"))),
            std::vector<std::string>{"invalid value \"http:///jwks\" for \"jwks_url\" (no host)"});
  EXPECT_EQ(messages(config(jwt("    algorithms: [RS256]\n    jwks_file: /dev/null\n"
                                "    refresh: 5m\n"))),
            std::vector<std::string>{"\"refresh\" needs \"jwks_url\" (it is how often the key set "
                                     "is fetched again)"});
  EXPECT_EQ(messages(config(jwt("    algorithms: [RS256]\n    jwks_url: http://127.0.0.1/\n"
                                "    refresh: 100ms\n"))),
            std::vector<std::string>{"\"refresh\" must be at least 1s"});
  EXPECT_EQ(messages(config(jwt("    algorithms: [RS256]\n    jwks_url: http://127.0.0.1/\n"
                                "    jwks_ca: /dev/null\n"))),
            std::vector<std::string>{"\"jwks_ca\" needs an https \"jwks_url\""});
  EXPECT_EQ(messages(config(jwt("    algorithms: [HS256]\n    jwks_url: http://localhost/\n"))),
            std::vector<std::string>{"\"jwks_url\" holds public keys, but \"algorithms\" lists "
                                     "only HMAC algorithms (use \"secret\" or \"secret_base64\" "
                                     "for HS256, HS384 and HS512)"});
}

// Review L3: keys and verdicts are not fetched in the clear from another host unless asked.
TEST(ConfigAuth, PlainHttpOnlyToTheLoopbackOrWhenInsecure) {
  const std::vector<std::string> refused{
      "\"jwks_url\": plain http:// to a host other than the loopback (use https://, or set "
      "\"insecure: true\" to accept it)"};
  EXPECT_EQ(messages(config(jwt("    algorithms: [RS256]\n    jwks_url: http://idp.example/k\n"))),
            refused);
  EXPECT_EQ(
      messages(config(jwt("    algorithms: [RS256]\n    jwks_url: http://127.0.0.9@evil/\n"))),
      refused);
  for (std::string_view url : {"https://idp.example/k", "http://127.0.0.1:8/k", "http://[::1]/k",
                               "http://localhost:8/k"}) {
    EXPECT_TRUE(messages(config(jwt("    algorithms: [RS256]\n    jwks_url: " +
                                    std::string(url) + "\n"))).empty()) << url;
  }
  EXPECT_TRUE(messages(config(jwt("    algorithms: [RS256]\n    jwks_url: http://idp.example/k\n"
                                  "    insecure: true\n"))).empty());
  const std::string introspection =
      "auth_providers:\n  p: {type: oauth2_introspection, client_id: gw, endpoint: ";
  EXPECT_EQ(messages(config(introspection + "http://idp.example/i}\n")),
            std::vector<std::string>{"\"endpoint\": plain http:// to a host other than the "
                                     "loopback (use https://, or set \"insecure: true\" to "
                                     "accept it)"});
  EXPECT_TRUE(messages(config(introspection + "http://idp.example/i, insecure: true}\n")).empty());
}

TEST(ConfigAuth, KeyMustFitTheAlgorithms) {
  EXPECT_EQ(messages(config(hsProvider("[RS256]"))),
            std::vector<std::string>{
                "\"secret\" is a shared secret for HS256, HS384 and HS512, but \"algorithms\" "
                "lists none of them (use \"jwks_file\" for RS, PS, ES and EdDSA keys)"});
  EXPECT_EQ(messages(config(jwt("    algorithms: [HS256]\n    jwks_file: /dev/null\n"))),
            std::vector<std::string>{
                "\"jwks_file\" holds public keys, but \"algorithms\" lists only HMAC algorithms "
                "(use \"secret\" or \"secret_base64\" for HS256, HS384 and HS512)"});
}

TEST(ConfigAuth, JwksFileIsReadRelativeToTheConfig) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("portico-auth-test-" + std::to_string(::getpid()));
  fs::create_directories(dir / "keys");
  std::ofstream(dir / "keys" / "jwks.json") << R"({"keys":[]})";
  const std::string yaml =
      config(jwt("    algorithms: [RS256, EdDSA]\n    jwks_file: keys/jwks.json\n"));
  LoadResult r = load(yaml, (dir / "portico.yaml").string());
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->auth_providers.at("p").jwt.jwks_file, "keys/jwks.json");
  EXPECT_EQ(r.config->auth_providers.at("p").jwt.jwks_text, R"({"keys":[]})");

  // Relative to the config's folder, not to the working directory.
  EXPECT_EQ(messages(yaml, (dir / "other" / "portico.yaml").string()),
            std::vector<std::string>{
                "cannot read jwks_file \"keys/jwks.json\": No such file or directory"});
  fs::remove_all(dir);
}

TEST(ConfigAuth, CredentialSources) {
  auto with = [](std::string_view source) {
    return config(jwt("    algorithms: [HS256]\n    secret: " + std::string(kSecret) +
                      "\n    token_from: [\"" + std::string(source) + "\"]\n"));
  };
  const std::string forms =
      " (use header:NAME, header:NAME:PREFIX, cookie:NAME or query:NAME)";
  EXPECT_EQ(messages(with("bearer")),
            std::vector<std::string>{"invalid credential source \"bearer\"" + forms});
  EXPECT_EQ(messages(with("body:token")),
            std::vector<std::string>{"invalid credential source \"body:token\"" + forms});
  EXPECT_EQ(messages(with("header:X Token")),
            std::vector<std::string>{
                "invalid header name \"X Token\" in credential source \"header:X Token\""});
  EXPECT_EQ(messages(with("header:Authorization:")),
            std::vector<std::string>{"invalid prefix \"\" in credential source "
                                     "\"header:Authorization:\" (a word such as Bearer)"});
  EXPECT_EQ(messages(with("cookie:")),
            std::vector<std::string>{"invalid cookie name \"\" in credential source \"cookie:\""});
  EXPECT_EQ(messages(with("query:")),
            std::vector<std::string>{"invalid query name \"\" in credential source \"query:\""});
}

TEST(ConfigAuth, ForwardClaimsHeaders) {
  auto with = [](std::string_view claims) {
    return config(jwt("    algorithms: [HS256]\n    secret: " + std::string(kSecret) +
                      "\n    forward_claims: " + std::string(claims) + "\n"));
  };
  EXPECT_EQ(messages(with("{sub: \"X User\"}")),
            std::vector<std::string>{"invalid header name \"X User\""});
  EXPECT_EQ(messages(with("{sub: Connection}")),
            std::vector<std::string>{"cannot forward a claim in hop-by-hop header \"Connection\""});
  EXPECT_EQ(messages(with("{sub: Host}")),
            std::vector<std::string>{"cannot forward a claim in \"Host\""});
  EXPECT_EQ(messages(with("{sub: Content-Length}")),
            std::vector<std::string>{"cannot forward a claim in \"Content-Length\""});
  EXPECT_EQ(messages(with("{sub: X-User, name: x-user}")),
            std::vector<std::string>{"header \"x-user\" is used by two claims"});
}

TEST(ConfigAuth, ApiKeyProvider) {
  LoadResult r = load(config("auth_providers:\n  p: {type: api_key}\n"));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  const AuthProvider& p = r.config->auth_providers.at("p");
  EXPECT_EQ(p.type, AuthProvider::Type::ApiKey);
  ASSERT_EQ(p.api_key.from.size(), 1u);
  EXPECT_EQ(p.api_key.from[0].name, "x-api-key");

  r = load(config("auth_providers:\n  p: {type: api_key, from: [\"query:apikey\"]}\n"));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->auth_providers.at("p").api_key.from[0].kind,
            CredentialSource::Kind::Query);
  EXPECT_EQ(messages(config("auth_providers:\n  p: {type: api_key, secret: x}\n")),
            std::vector<std::string>{"unknown key \"secret\" in auth provider \"p\""});
}

TEST(ConfigAuth, ProviderTypesAndNames) {
  EXPECT_EQ(messages(config("auth_providers:\n  p: {type: mtls, from: x}\n")),
            std::vector<std::string>{"unknown key \"from\" in auth provider \"p\""});
  EXPECT_EQ(messages(config("auth_providers:\n  p: {type: oauth2_introspection, endpoint: x}\n")),
            (std::vector<std::string>{
                "missing required key \"client_id\" in auth provider \"p\"",
                "invalid value \"x\" for \"endpoint\" (use an http:// or https:// URL)"}));
  EXPECT_EQ(messages(config("auth_providers:\n  p: {type: basic, realm: \"a\\\"b\"}\n")),
            std::vector<std::string>{
                "\"realm\" must not hold quotes, backslashes or line breaks"});
  EXPECT_EQ(messages(config("auth_providers:\n  p: {type: saml}\n")),
            std::vector<std::string>{"invalid value \"saml\" for \"type\" (use jwt, api_key, mtls, "
                                     "basic or oauth2_introspection)"});
  EXPECT_EQ(messages(config("auth_providers:\n  p: {from: [\"query:k\"]}\n")),
            std::vector<std::string>{"missing required key \"type\" in auth provider \"p\""});
  EXPECT_EQ(messages(config("auth_providers:\n  \"a b\": {type: api_key}\n", "auth: [\"a b\"]")),
            std::vector<std::string>{
                "invalid auth provider name \"a b\" (use letters, digits, '_', '-' and '.')"});
}

TEST(ConfigAuth, Consumers) {
  LoadResult r = load(config(R"(auth_providers:
  p: {type: api_key}
consumers:
  - name: alice
    groups: [admins, ops]
    api_keys: ["${ALICE_KEY}"]
    jwt_subjects: [alice]
  - name: bob
    api_key_sha256: ["2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"]
)"));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  const std::vector<Consumer>& c = r.config->consumers;
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].name, "alice");
  EXPECT_EQ(c[0].groups, (std::vector<std::string>{"admins", "ops"}));
  EXPECT_EQ(c[0].api_keys, std::vector<std::string>{"alice-secret"});
  EXPECT_EQ(c[0].jwt_subjects, std::vector<std::string>{"alice"});
  ASSERT_EQ(c[1].api_key_sha256.size(), 1u);
  EXPECT_EQ(c[1].api_key_sha256[0][0], 0x2c);
  EXPECT_EQ(c[1].api_key_sha256[0][31], 0x24);
}

TEST(ConfigAuth, ConsumerMistakes) {
  const std::string p = "auth_providers:\n  p: {type: api_key}\nconsumers:\n";
  EXPECT_EQ(messages(config(p + "  - {groups: [a]}\n")),
            std::vector<std::string>{"missing required key \"name\" in consumer"});
  EXPECT_EQ(messages(config(p + "  - {name: a}\n  - {name: a}\n")),
            std::vector<std::string>{"duplicate consumer name \"a\""});
  EXPECT_EQ(messages(config(p + "  - {name: a, api_keys: [\"\"]}\n")),
            std::vector<std::string>{"an item of \"api_keys\" must not be empty"});
  EXPECT_EQ(messages(config(p + "  - {name: a, api_keys: [k1]}\n  - {name: b, api_keys: [k1]}\n")),
            std::vector<std::string>{"an API key of consumer \"b\" is also used by consumer \"a\" "
                                     "(each key must name one consumer)"});
  EXPECT_EQ(messages(config(p + "  - {name: a, api_keys: [k1, k1]}\n")),
            std::vector<std::string>{"the same API key is listed twice for consumer \"a\""});
  EXPECT_EQ(messages(config(p + "  - {name: a, api_key_sha256: [xyz]}\n")),
            std::vector<std::string>{"invalid value \"xyz\" for an item of \"api_key_sha256\" "
                                     "(use the 64 hex digits of a SHA-256 digest)"});
  EXPECT_EQ(messages(config(p + "  - {name: a, plan: free}\n")),
            std::vector<std::string>{"unknown plan \"free\" (define it under plans)"});
  EXPECT_EQ(messages(config(p + "  - {name: a, basic_auth: {username: a}}\n")),
            std::vector<std::string>{"missing required key \"password_hash\" in basic_auth"});
  EXPECT_EQ(messages(config(p + "  - {name: a, basic_auth: {username: a, password_hash: "
                                "hunter2}}\n")),
            std::vector<std::string>{"\"password_hash\" is not a crypt(3) hash (use bcrypt $2b$, "
                                     "yescrypt $y$ or sha512-crypt $6$, e.g. from mkpasswd or "
                                     "htpasswd -B)"});
  EXPECT_EQ(messages(config(p + "  - {name: a, basic_auth: {username: \"a:b\", password_hash: "
                                "\"$6$saltsalt$abcdefghij\"}}\n")),
            std::vector<std::string>{"\"username\" must be non-empty, without ':' (RFC 7617)"});
}

TEST(ConfigAuth, RouteAuthNamesProviders) {
  const std::string providers =
      "auth_providers:\n  corp_jwt: {type: api_key}\n  keys: {type: api_key}\n";
  EXPECT_EQ(
      messages(config(providers, "auth: [corp]")),
      std::vector<std::string>{"unknown auth provider \"corp\" (did you mean \"corp_jwt\"?)"});
  EXPECT_EQ(messages(config(providers, "auth: [kyes]")),
            std::vector<std::string>{"unknown auth provider \"kyes\" (did you mean \"keys\"?)"});
  EXPECT_EQ(messages(config(providers, "auth: [keys, keys]")),
            std::vector<std::string>{"duplicate auth provider \"keys\""});
  EXPECT_EQ(messages(config(providers, "auth: []")),
            std::vector<std::string>{"\"auth\" must not be empty"});
  EXPECT_EQ(messages(config(providers, "auth: keys")),
            std::vector<std::string>{
                "invalid value \"keys\" for \"auth\" (use public or a list of auth providers, "
                "e.g. [keys])"});
  LoadResult r = load(config(providers, "auth: [keys, corp_jwt]"));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_EQ(r.config->routes[0].auth, (std::vector<std::string>{"keys", "corp_jwt"}));
}

TEST(ConfigAuth, RouteAuthorize) {
  const std::string providers = "auth_providers:\n  p: {type: api_key}\n";
  LoadResult r = load(
      config(providers,
             "auth: [p]\n    authorize: {scopes: [a, b], groups: [g], claims: {tenant: acme}}"));
  ASSERT_TRUE(r.config) << r.errors[0].format();
  ASSERT_TRUE(r.config->routes[0].authorize);
  const Authorize& a = *r.config->routes[0].authorize;
  EXPECT_EQ(a.scopes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(a.groups, std::vector<std::string>{"g"});
  ASSERT_EQ(a.claims.size(), 1u);
  EXPECT_EQ(a.claims[0], (std::pair<std::string, std::string>{"tenant", "acme"}));

  EXPECT_EQ(messages(config(providers, "auth: public\n    authorize: {groups: [g]}")),
            std::vector<std::string>{"\"authorize\" needs auth providers (this route is public)"});
  EXPECT_EQ(messages(config(providers, "auth: [p]\n    authorize: {roles: [g]}")),
            std::vector<std::string>{"unknown key \"roles\" in authorize"});
  EXPECT_EQ(messages(config(providers, "auth: [p]\n    authorize: {claims: {tenant: [a]}}")),
            std::vector<std::string>{"expected a string for \"tenant\", got a list"});
}

}  // namespace
}  // namespace portico::config
