// The access_log, metrics and tracing sections, and /admin/config's redaction.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/loader.hpp"

namespace portico::config {
namespace {

constexpr std::string_view kRoutes = R"(
upstreams:
  echo: {builtin: echo}
routes:
  - match: {path_prefix: /}
    upstream: echo
    auth: public
)";

LoadResult load(std::string_view head, const EnvLookup& env = [](const std::string&) {
  return std::optional<std::string>();
}) {
  std::string yaml = "listeners:\n  - address: 127.0.0.1:8080\n";
  yaml += head;
  yaml += kRoutes;
  return loadConfigString(yaml, "test.yaml", env);
}

TEST(ObservabilityConfig, Defaults) {
  LoadResult r = load("");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_TRUE(r.config->metrics.enabled);
  EXPECT_TRUE(r.config->tracing.propagate);
  EXPECT_TRUE(r.config->tracing.otlp_endpoint.empty());
  EXPECT_DOUBLE_EQ(r.config->tracing.sample, 0.01);
  EXPECT_TRUE(r.config->access_log.fields.empty());
}

TEST(ObservabilityConfig, TracingMetricsAndFields) {
  LoadResult r = load(R"(
metrics: {enabled: false}
tracing: {propagate: false, otlp_endpoint: "http://127.0.0.1:4318/v1/traces", sample: 0.5,
          service_name: edge, export_interval: 250ms, queue_size: 10}
access_log: {fields: [trace_id, route, consumer, upstream_connect_ms]}
)");
  ASSERT_TRUE(r.config) << r.errors[0].format();
  EXPECT_FALSE(r.config->metrics.enabled);
  EXPECT_FALSE(r.config->tracing.propagate);
  EXPECT_EQ(r.config->tracing.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
  EXPECT_DOUBLE_EQ(r.config->tracing.sample, 0.5);
  EXPECT_EQ(r.config->tracing.service_name, "edge");
  EXPECT_EQ(r.config->tracing.export_interval.count(), 250);
  EXPECT_EQ(r.config->tracing.queue_size, 10u);
  using F = AccessLog::Field;
  EXPECT_EQ(r.config->access_log.fields,
            (std::vector<F>{F::TraceId, F::Route, F::Consumer, F::UpstreamConnectMs}));
}

TEST(ObservabilityConfig, MistakesAreReported) {
  auto first = [](std::string_view yaml) {
    LoadResult r = load(yaml);
    return r.errors.empty() ? std::string() : r.errors[0].format();
  };
  EXPECT_NE(first("tracing: {otlp_endpoint: \"127.0.0.1:4318\"}\n").find("http://"),
            std::string::npos);
  EXPECT_NE(first("tracing: {sample: 2}\n").find("sample"), std::string::npos);
  EXPECT_NE(first("tracing: {sampel: 0.1}\n").find("did you mean"), std::string::npos);
  EXPECT_NE(first("access_log: {fields: [route, route]}\n").find("listed twice"),
            std::string::npos);
  EXPECT_NE(first("access_log: {fields: [rout]}\n").find("route"), std::string::npos);
  EXPECT_NE(first("metrics: {enabled: maybe}\n").find("enabled"), std::string::npos);
}

TEST(RedactedConfig, EverySecretKindLiteralOrFromTheEnvironment) {
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "ADMIN_TOKEN") return "admin-token-from-env";
    if (name == "KEY") return "alice-key-from-env";
    return std::nullopt;
  };
  LoadResult r = load(R"(
admin: {address: 127.0.0.1:9901, token: "${ADMIN_TOKEN}", metrics_token: scrape-token-literal}
redis: {address: 127.0.0.1:6379, password: redis-password-literal}
auth_providers:
  hs: {type: jwt, secret: jwt-secret-literal-long-enough-for-hs256, algorithms: [HS256]}
  hs64: {type: jwt, secret_base64: "c2VjcmV0LWJhc2U2NC1saXRlcmFsLWxvbmctZW5vdWdoLWZvci1oczI1Ng==", algorithms: [HS256]}
  idp: {type: oauth2_introspection, endpoint: "https://idp.example.com/introspect",
        client_id: gateway, client_secret: client-secret-literal}
consumers:
  - name: alice
    api_keys: ["${KEY}", api-key-literal-2]
    api_key_sha256: ["0000000000000000000000000000000000000000000000000000000000000000"]
    basic_auth: {username: alice, password_hash: "$6$salt$hashedpasswordliteral"}
)",
                      env);
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format());
  const std::string& text = r.config->redacted_json;
  for (std::string_view secret :
       {"admin-token-from-env", "scrape-token-literal", "redis-password-literal",
        "jwt-secret-literal-long-enough-for-hs256", "c2VjcmV0LWJhc2U2NC1saXRlcmFsLWxvbmctZW5vdWdoLWZvci1oczI1Ng==", "client-secret-literal",
        "alice-key-from-env", "api-key-literal-2", "0000000000000000", "hashedpasswordliteral"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret;
  }
  auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["admin"]["token"], "<redacted>");
  EXPECT_EQ(json["consumers"][0]["api_keys"][1], "<redacted>");
  EXPECT_EQ(json["consumers"][0]["basic_auth"]["password_hash"], "<redacted>");
  EXPECT_EQ(json["consumers"][0]["basic_auth"]["username"], "alice");
  EXPECT_EQ(json["auth_providers"]["idp"]["client_id"], "gateway");
  EXPECT_EQ(json["redis"]["address"], "127.0.0.1:6379");
}

TEST(RedactedConfig, ASecretUsedElsewhereIsRedactedThereToo) {
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "KEY") return "the-api-key-value";
    return std::nullopt;
  };
  std::string yaml = R"(listeners:
  - address: 127.0.0.1:8080
consumers:
  - {name: alice, api_keys: ["${KEY}"]}
upstreams:
  echo: {builtin: echo}
routes:
  - match: {path_prefix: /}
    upstream: echo
    auth: public
    headers: {request: {set: {X-Key: "${KEY}", X-Auth: "Bearer ${KEY}", X-Plain: hello}}}
)";
  LoadResult r = loadConfigString(yaml, "test.yaml", env);
  ASSERT_TRUE(r.config) << r.errors[0].format();
  auto json = nlohmann::json::parse(r.config->redacted_json);
  auto set = json["routes"][0]["headers"]["request"]["set"];
  EXPECT_EQ(set["X-Key"], "<redacted>");
  EXPECT_EQ(set["X-Auth"], "<redacted>");
  EXPECT_EQ(set["X-Plain"], "hello");
  EXPECT_EQ(r.config->redacted_json.find("the-api-key-value"), std::string::npos);
}

}  // namespace
}  // namespace portico::config
