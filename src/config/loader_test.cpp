// loadConfigString/loadConfigFile: the model they build, and how they report problems.
// One broken config per mistake lives in tests/configs/broken (broken_configs_test.cpp).

#include "config/loader.hpp"

#include <gtest/gtest.h>

#include <random>

namespace portico::config {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kMinimal = R"(listeners:
  - address: 127.0.0.1:8080
upstreams:
  echo: {builtin: echo}
routes:
  - match: {path_prefix: /}
    upstream: echo
    auth: public
)";

std::optional<std::string> noEnv(const std::string&) { return std::nullopt; }

LoadResult load(std::string_view yaml, const EnvLookup& env = noEnv) {
  return loadConfigString(yaml, "test.yaml", env);
}

std::vector<std::string> errorsOf(std::string_view yaml, const EnvLookup& env = noEnv) {
  std::vector<std::string> out;
  for (const ConfigError& e : load(yaml, env).errors) {
    out.push_back(e.format());
  }
  return out;
}

TEST(ConfigLoader, LoadsAMinimalConfigWithDefaults) {
  LoadResult r = load(kMinimal);
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].format();
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(c.file, "test.yaml");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.drain_timeout, 30s);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].name, "listener-1");
  EXPECT_EQ(c.listeners[0].host, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 8080);
  EXPECT_EQ(c.listeners[0].limits.max_header_bytes, 32u * 1024);
  EXPECT_FALSE(c.admin.enabled);
  EXPECT_EQ(c.access_log.path, "stdout");
  ASSERT_EQ(c.upstreams.count("echo"), 1u);
  EXPECT_EQ(c.upstreams.at("echo").builtin, Upstream::Builtin::Echo);
  EXPECT_TRUE(c.upstreams.at("echo").endpoints.empty());
  ASSERT_EQ(c.routes.size(), 1u);
  const Route& route = c.routes[0];
  EXPECT_EQ(route.name, "route-1");
  EXPECT_EQ(route.pos.line, 6);
  EXPECT_EQ(route.pos.column, 5);
  EXPECT_EQ(route.match.path_kind, RouteMatch::PathKind::Prefix);
  EXPECT_EQ(route.match.path, "/");
  ASSERT_EQ(route.split.size(), 1u);
  EXPECT_EQ(route.split[0].upstream, "echo");
  EXPECT_EQ(route.split[0].weight, 1u);
  EXPECT_TRUE(route.auth_public);
  EXPECT_FALSE(route.timeout);
}

TEST(ConfigLoader, LoadsEverySupportedKey) {
  constexpr std::string_view kFull = R"(workers: 4
drain_timeout: 10s
listeners:
  - name: public
    address: "[::]:8443"
    http2: true
    limits:
      max_header_bytes: 16KiB
      max_uri_bytes: 4KiB
      max_body_bytes: 1MiB
      header_timeout: 5s
      idle_timeout: 1m
      max_connections: 5000
    trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 192.0.2.1]
admin:
  address: 127.0.0.1:9902
  token: ${ADMIN_TOKEN}
access_log: {path: "off", format: text, sample: 0.25}
upstreams:
  users:
    endpoints: ["127.0.0.1:9001", "users.internal:80", "[::1]:9003"]
    protocol: http1
    load_balancing: least_request
    timeouts: {connect: 250ms, request: 5s, idle: 30s}
    pool: {max_connections: 64, max_idle: 8}
  users_v2: {endpoints: ["127.0.0.1:9002"]}
routes:
  - name: users
    match:
      hosts: [API.example.com, "*.example.com"]
      path: /users/{id}
      methods: [get, POST]
      headers: {X-Api-Version: "2", X-Tenant: "~^a[0-9]+$"}
      query: {beta: "true"}
    priority: 10
    split: [{upstream: users_v2, weight: 10}, {upstream: users, weight: 90}]
    rewrite: {path: "/v2/users/{id}"}
    auth: public
    headers:
      request: {set: {X-Gateway: "1.0", Host: users.internal}, remove: [Cookie]}
      response: {set: {Strict-Transport-Security: max-age=63072000}, remove: [Server]}
    timeout: 2s
    max_body_bytes: 64KiB
  - match: {path_prefix: /static/, path_regex_unused: 1}
    upstream: users
    auth: public
)";
  // The second route has an unknown key on purpose: fix it and load again.
  std::string yaml(kFull);
  EXPECT_EQ(errorsOf(yaml, noEnv).size(), 2u);  // ADMIN_TOKEN unset + unknown key
  yaml.replace(yaml.find(", path_regex_unused: 1"), 22, "");
  auto env = [](const std::string& name) -> std::optional<std::string> {
    return name == "ADMIN_TOKEN" ? std::optional<std::string>("s3cret") : std::nullopt;
  };
  LoadResult r = load(yaml, env);
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].format();
  const Config& c = *r.config;
  EXPECT_EQ(c.workers, 4u);
  EXPECT_EQ(c.drain_timeout, 10s);
  const Listener& l = c.listeners.at(0);
  EXPECT_EQ(l.name, "public");
  EXPECT_EQ(l.host, "::");
  EXPECT_EQ(l.port, 8443);
  EXPECT_TRUE(l.http2);
  EXPECT_EQ(l.limits.max_header_bytes, 16u * 1024);
  EXPECT_EQ(l.limits.max_uri_bytes, 4u * 1024);
  EXPECT_EQ(l.limits.max_body_bytes, 1u << 20);
  EXPECT_EQ(l.limits.header_timeout, 5s);
  EXPECT_EQ(l.limits.idle_timeout, 60s);
  EXPECT_EQ(l.limits.max_connections, 5000u);
  ASSERT_EQ(l.trusted_proxies.size(), 3u);
  EXPECT_EQ(l.trusted_proxies[0].prefix_len, 104);
  EXPECT_EQ(l.trusted_proxies[1].prefix_len, 32);
  EXPECT_EQ(l.trusted_proxies[2].prefix_len, 128);
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.host, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 9902);
  EXPECT_EQ(c.admin.token, "s3cret");
  EXPECT_FALSE(c.access_log.enabled());
  EXPECT_EQ(c.access_log.format, AccessLog::Format::Text);
  EXPECT_DOUBLE_EQ(c.access_log.sample, 0.25);
  const Upstream& u = c.upstreams.at("users");
  EXPECT_EQ(u.name, "users");
  ASSERT_EQ(u.endpoints.size(), 3u);
  EXPECT_EQ(u.endpoints[1].host, "users.internal");
  EXPECT_EQ(u.endpoints[1].port, 80);
  EXPECT_EQ(u.endpoints[2].host, "::1");
  EXPECT_EQ(u.endpoints[2].text, "[::1]:9003");
  EXPECT_EQ(u.balancing, Upstream::Balancing::LeastRequest);
  EXPECT_EQ(u.timeouts.connect, 250ms);
  EXPECT_EQ(u.timeouts.request, 5s);
  EXPECT_EQ(u.timeouts.idle, 30s);
  EXPECT_EQ(u.max_connections, 64u);
  EXPECT_EQ(u.max_idle, 8u);
  const Route& r0 = c.routes.at(0);
  EXPECT_EQ(r0.match.hosts, (std::vector<std::string>{"api.example.com", "*.example.com"}));
  EXPECT_EQ(r0.match.path_kind, RouteMatch::PathKind::Template);
  EXPECT_EQ(r0.match.path, "/users/{id}");
  EXPECT_EQ(r0.match.methods, (std::vector<std::string>{"GET", "POST"}));
  ASSERT_EQ(r0.match.headers.size(), 2u);
  EXPECT_EQ(r0.match.headers[0].name, "x-api-version");
  EXPECT_EQ(r0.match.headers[0].value, "2");
  EXPECT_FALSE(r0.match.headers[0].is_regex);
  EXPECT_EQ(r0.match.headers[1].value, "^a[0-9]+$");
  EXPECT_TRUE(r0.match.headers[1].is_regex);
  ASSERT_EQ(r0.match.query.size(), 1u);
  EXPECT_EQ(r0.match.query[0].name, "beta");
  EXPECT_EQ(r0.priority, 10);
  ASSERT_EQ(r0.split.size(), 2u);
  EXPECT_EQ(r0.split[0].upstream, "users_v2");
  EXPECT_EQ(r0.split[0].weight, 10u);
  EXPECT_EQ(r0.rewrite.path, "/v2/users/{id}");
  EXPECT_FALSE(r0.rewrite.strip_prefix);
  ASSERT_EQ(r0.request_headers.set.size(), 2u);
  EXPECT_EQ(r0.request_headers.set[1],
            (std::pair<std::string, std::string>{"Host", "users.internal"}));
  EXPECT_EQ(r0.request_headers.remove, (std::vector<std::string>{"cookie"}));
  EXPECT_EQ(r0.response_headers.remove, (std::vector<std::string>{"server"}));
  EXPECT_EQ(r0.timeout, 2s);
  EXPECT_EQ(r0.max_body_bytes, 64u * 1024);
  const Route& r1 = c.routes.at(1);
  EXPECT_EQ(r1.name, "route-2");
  EXPECT_EQ(r1.match.path, "/static");  // trailing '/' of a prefix dropped
}

TEST(ConfigLoader, TreatsATemplateWithoutParametersAsExact) {
  std::string yaml(kMinimal);
  yaml.replace(yaml.find("path_prefix: /"), 14, "path: /health");
  LoadResult r = load(yaml);
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->routes[0].match.path_kind, RouteMatch::PathKind::Exact);
  EXPECT_EQ(r.config->routes[0].match.path, "/health");
}

TEST(ConfigLoader, SubstitutesEnvironmentVariablesInAnyScalar) {
  constexpr std::string_view kYaml = R"(listeners:
  - address: ${BIND:-127.0.0.1}:${PORT}
upstreams:
  api: {endpoints: ["${API_HOST}:80"]}
routes:
  - match: {path_prefix: "${PREFIX:-/api}"}
    upstream: api
    auth: public
    timeout: ${TIMEOUT}
)";
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "PORT") return "9000";
    if (name == "API_HOST") return "api.internal";
    if (name == "TIMEOUT") return "3s";
    return std::nullopt;
  };
  LoadResult r = load(kYaml, env);
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].format();
  EXPECT_EQ(r.config->listeners[0].host, "127.0.0.1");
  EXPECT_EQ(r.config->listeners[0].port, 9000);
  EXPECT_EQ(r.config->upstreams.at("api").endpoints[0].host, "api.internal");
  EXPECT_EQ(r.config->routes[0].match.path, "/api");
  EXPECT_EQ(r.config->routes[0].timeout, 3s);
}

TEST(ConfigLoader, ReportsUnsetVariablesAtTheirScalar) {
  constexpr std::string_view kYaml = R"(listeners:
  - address: 127.0.0.1:8080
admin: {token: "${ADMIN_TOKEN}"}
routes: []
)";
  EXPECT_EQ(errorsOf(kYaml),
            std::vector<std::string>{"test.yaml:3:16: environment variable ADMIN_TOKEN is not set "
                                     "(use ${ADMIN_TOKEN:-default} for a default)"});
}

TEST(ConfigLoader, CollectsEveryErrorInDocumentOrder) {
  constexpr std::string_view kYaml = R"(workers: 0
listeners:
  - address: 127.0.0.1:99999
upstreams:
  users: {endpoints: ["127.0.0.1:9001"]}
routes:
  - match: {pathprefix: /users}
    upstream: user
  - name: ok
    match: {path_prefix: /ok}
    upstream: users
    auth: public
    timeout: 5
)";
  EXPECT_EQ(errorsOf(kYaml),
            (std::vector<std::string>{
                "test.yaml:1:10: invalid value \"0\" for \"workers\" (use auto or a whole number "
                "from 1 to 256)",
                "test.yaml:3:14: invalid port \"99999\" in address \"127.0.0.1:99999\" (use 1 to "
                "65535)",
                "test.yaml:7:5: route \"route-1\" has no auth decision: add \"auth: public\" or "
                "name auth providers",
                "test.yaml:7:13: unknown key \"pathprefix\" in match (did you mean "
                "\"path_prefix\"?)",
                "test.yaml:8:15: unknown upstream \"user\" (did you mean \"users\"?)",
                "test.yaml:13:14: invalid duration \"5\" (use 250ms, 5s, 1m, 1h, 1d)",
            }));
  EXPECT_FALSE(load(kYaml).config);
}

TEST(ConfigLoader, ReportsWrongTypesAtTheNode) {
  constexpr std::string_view kYaml = R"(listeners: {address: 127.0.0.1:8080}
upstreams:
  users:
    endpoints: {a: 1}
  api:
    endpoints: 127.0.0.1:80
routes:
  - upstream: users
    auth: public
    match:
)";
  EXPECT_EQ(errorsOf(kYaml),
            (std::vector<std::string>{
                "test.yaml:1:12: expected a list for \"listeners\", got a map",
                "test.yaml:4:16: expected a list for \"endpoints\", got a map",
                "test.yaml:6:16: expected a list for \"endpoints\", got a string (write "
                "[127.0.0.1:80])",
                "test.yaml:10:5: expected a map for \"match\", got an empty value",
            }));
}

TEST(ConfigLoader, ReportsDuplicateKeys) {
  constexpr std::string_view kYaml = R"(listeners: [{address: 127.0.0.1:8080}]
upstreams: {echo: {builtin: echo}}
routes:
  - match: {path_prefix: /}
    upstream: echo
    auth: public
    upstream: echo
)";
  EXPECT_EQ(errorsOf(kYaml), std::vector<std::string>{
                                 "test.yaml:7:5: duplicate key \"upstream\" (first at line 5)"});
}

TEST(ConfigLoader, ReportsEmptyAndNonMapDocuments) {
  EXPECT_EQ(errorsOf(""), std::vector<std::string>{"test.yaml:1:1: the config file is empty"});
  EXPECT_EQ(errorsOf("# just a comment\n"),
            std::vector<std::string>{"test.yaml:1:1: the config file is empty"});
  EXPECT_EQ(errorsOf("- a\n- b\n"),
            std::vector<std::string>{"test.yaml:1:1: the config must be a map of keys "
                                     "(listeners, upstreams, routes, ...), got a list"});
  EXPECT_EQ(errorsOf("a: 1\n---\nb: 2\n"),
            std::vector<std::string>{"test.yaml:2:1: the file holds more than one YAML document "
                                     "(\"---\"); put the whole config in one"});
}

TEST(ConfigLoader, ReportsYamlSyntaxErrorsWithTheirPosition) {
  std::vector<std::string> errors = errorsOf("listeners: [a, b\nroutes: []\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "test.yaml:2:7: invalid YAML: end of sequence flow not found");
}

TEST(ConfigLoader, FollowsAliases) {
  constexpr std::string_view kYaml = R"(listeners: [{address: 127.0.0.1:8080}]
upstreams: {echo: {builtin: echo}}
routes:
  - &base {match: {path_prefix: /a}, upstream: echo, auth: public, name: a}
  - name: b
    match: *m
)";
  // An undefined alias is a YAML error; a defined one is read like the node it names.
  EXPECT_EQ(errorsOf(kYaml).size(), 1u);
  constexpr std::string_view kGood = R"(listeners: [{address: 127.0.0.1:8080}]
upstreams: {echo: {builtin: echo}}
routes:
  - {match: &m {path_prefix: /a}, upstream: echo, auth: public}
  - {match: *m, upstream: echo, auth: public, priority: 1}
)";
  LoadResult r = load(kGood);
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->routes[1].match.path, "/a");
}

TEST(ConfigLoader, FormatsErrorsWithoutAPositionAsFileAndMessage) {
  EXPECT_EQ((ConfigError{"a.yaml", 3, 7, "bad"}.format()), "a.yaml:3:7: bad");
  EXPECT_EQ((ConfigError{"a.yaml", 0, 0, "bad"}.format()), "a.yaml: bad");
}

TEST(ConfigLoader, ReportsAMissingFile) {
  LoadResult r = loadConfigFile("/nonexistent/portico.yaml", noEnv);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].format(),
            "/nonexistent/portico.yaml: cannot open the config file: No such file or directory");
  EXPECT_FALSE(r.config);
  r = loadConfigFile("/", noEnv);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].format(), "/: cannot read the config file: Is a directory");
}

TEST(ConfigLoader, LoadsAFileFromDisk) {
  LoadResult r = loadConfigFile(
      std::string(PORTICO_SOURCE_DIR) + "/tests/configs/good/01-minimal.yaml", noEnv);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(r.config);
}

TEST(ConfigLoader, LoadsOneHundredThousandRoutes) {
  constexpr int kRoutes = 100'000;
  std::string yaml =
      "listeners: [{address: 127.0.0.1:8080}]\nupstreams: {u: {builtin: echo}}\n"
      "routes:\n";
  yaml.reserve(kRoutes * 80);
  for (int i = 0; i < kRoutes; ++i) {
    std::string n = std::to_string(i);
    yaml +=
        "  - {name: r" + n + ", match: {path_prefix: /svc" + n + "}, upstream: u, auth: public}\n";
  }
  LoadResult r = load(yaml);
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].format();
  ASSERT_EQ(r.config->routes.size(), static_cast<size_t>(kRoutes));
  EXPECT_EQ(r.config->routes.back().name, "r99999");
  EXPECT_EQ(r.config->routes.back().match.path, "/svc99999");
}

TEST(ConfigLoader, NeverThrowsOnMangledInput) {
  // Byte-level mutations of a valid config: whatever comes out must be errors, not exceptions.
  std::string base(kMinimal);
  std::mt19937 rng(12345);
  const std::string alphabet =
      "{}[]:,-&*!|>'\"#%@`\t\n ?~${}/\\\x01\xff"
      "abc";
  for (int round = 0; round < 2000; ++round) {
    std::string yaml = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % yaml.size();
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          yaml[at] = c;
          break;
        case 1:
          yaml.insert(yaml.begin() + static_cast<long>(at), c);
          break;
        default:
          yaml.erase(at, 1);
          break;
      }
    }
    LoadResult r;
    EXPECT_NO_THROW(r = load(yaml));
    EXPECT_EQ(r.config.has_value(), r.errors.empty());
  }
}

}  // namespace
}  // namespace portico::config
