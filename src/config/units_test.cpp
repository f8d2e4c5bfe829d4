// Value syntaxes of the config: durations, sizes, ${ENV}, addresses, CIDRs, hosts, paths.

#include <gtest/gtest.h>

#include "config/env.hpp"
#include "config/loader.hpp"
#include "config/values.hpp"

namespace portico::config {
namespace {

using namespace std::chrono_literals;

TEST(ConfigUnits, ParsesDurationsWithEachUnit) {
  EXPECT_EQ(parseDuration("250ms"), Duration(250));
  EXPECT_EQ(parseDuration("5s"), Duration(5000));
  EXPECT_EQ(parseDuration("1m"), Duration(60'000));
  EXPECT_EQ(parseDuration("1h"), Duration(3'600'000));
  EXPECT_EQ(parseDuration("0s"), Duration(0));
}

TEST(ConfigUnits, RefusesDurationsWithoutAKnownUnit) {
  EXPECT_FALSE(parseDuration("5"));
  EXPECT_FALSE(parseDuration(""));
  EXPECT_FALSE(parseDuration("s"));
  EXPECT_FALSE(parseDuration("5 s"));
  EXPECT_FALSE(parseDuration("1.5s"));
  EXPECT_FALSE(parseDuration("-1s"));
  EXPECT_FALSE(parseDuration("5S"));
  EXPECT_EQ(parseDuration("1d"), Duration{86'400'000});
  EXPECT_FALSE(parseDuration("1w"));
  EXPECT_FALSE(parseDuration("5sec"));
}

TEST(ConfigUnits, RefusesDurationsThatOverflow) {
  EXPECT_FALSE(parseDuration("99999999999999999999ms"));
  EXPECT_FALSE(parseDuration("9999999999999999h"));
}

TEST(ConfigUnits, ParsesSizesInBytesAndBinaryUnits) {
  EXPECT_EQ(parseSize("512"), 512u);
  EXPECT_EQ(parseSize("0"), 0u);
  EXPECT_EQ(parseSize("64KiB"), 64u * 1024);
  EXPECT_EQ(parseSize("10MiB"), 10u * 1024 * 1024);
  EXPECT_EQ(parseSize("1GiB"), uint64_t{1} << 30);
}

TEST(ConfigUnits, RefusesAmbiguousOrMalformedSizes) {
  EXPECT_FALSE(parseSize("10MB"));
  EXPECT_FALSE(parseSize("10KB"));
  EXPECT_FALSE(parseSize("10kib"));
  EXPECT_FALSE(parseSize("KiB"));
  EXPECT_FALSE(parseSize(""));
  EXPECT_FALSE(parseSize("1.5MiB"));
  EXPECT_FALSE(parseSize("-1"));
  EXPECT_FALSE(parseSize("99999999999GiB"));
}

std::optional<std::string> fakeEnv(const std::string& name) {
  if (name == "HOST") {
    return "api.example.com";
  }
  if (name == "EMPTY") {
    return "";
  }
  if (name == "NESTED") {
    return "${HOST}";
  }
  return std::nullopt;
}

TEST(ConfigEnv, ExpandsSetVariablesAndDefaults) {
  std::vector<std::string> problems;
  EXPECT_EQ(detail::expandEnv("https://${HOST}/x", fakeEnv, problems), "https://api.example.com/x");
  EXPECT_EQ(detail::expandEnv("${UNSET:-fallback}", fakeEnv, problems), "fallback");
  EXPECT_EQ(detail::expandEnv("[${UNSET:-}]", fakeEnv, problems), "[]");
  EXPECT_EQ(detail::expandEnv("${EMPTY}", fakeEnv, problems), "");
  EXPECT_EQ(detail::expandEnv("${EMPTY:-d}", fakeEnv, problems), "d");
  EXPECT_EQ(detail::expandEnv("${HOST:-d}", fakeEnv, problems), "api.example.com");
  EXPECT_EQ(detail::expandEnv("$2b$12$abc", fakeEnv, problems), "$2b$12$abc");
  EXPECT_TRUE(problems.empty());
}

TEST(ConfigEnv, DoesNotExpandValuesAgain) {
  std::vector<std::string> problems;
  EXPECT_EQ(detail::expandEnv("${NESTED}", fakeEnv, problems), "${HOST}");
  EXPECT_TRUE(problems.empty());
}

TEST(ConfigEnv, ReportsUnsetAndMalformedReferences) {
  std::vector<std::string> problems;
  detail::expandEnv("${ADMIN_TOKEN} ${A B} ${X", fakeEnv, problems);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0],
            "environment variable ADMIN_TOKEN is not set (use ${ADMIN_TOKEN:-default} for a "
            "default)");
  EXPECT_EQ(problems[1],
            "invalid environment variable reference \"${A B}\" (use ${NAME} or ${NAME:-default})");
  EXPECT_EQ(problems[2], "unterminated \"${\" (use ${NAME} or ${NAME:-default})");
}

TEST(ConfigEnv, ProcessEnvReadsTheEnvironment) {
  ::setenv("PORTICO_CONFIG_TEST_VAR", "v1", 1);
  EXPECT_EQ(processEnv("PORTICO_CONFIG_TEST_VAR"), "v1");
  ::unsetenv("PORTICO_CONFIG_TEST_VAR");
  EXPECT_FALSE(processEnv("PORTICO_CONFIG_TEST_VAR"));
}

TEST(ConfigValues, ParsesListenAddresses) {
  detail::HostPort hp;
  EXPECT_FALSE(detail::parseListenAddress("0.0.0.0:8080", hp));
  EXPECT_EQ(hp.host, "0.0.0.0");
  EXPECT_EQ(hp.port, 8080);
  EXPECT_FALSE(detail::parseListenAddress("[::1]:9901", hp));
  EXPECT_EQ(hp.host, "::1");
  EXPECT_EQ(hp.canonical, "[::1]:9901");
  EXPECT_FALSE(detail::parseListenAddress("[0:0::1]:9901", hp));
  EXPECT_EQ(hp.canonical, "[::1]:9901");
}

TEST(ConfigValues, RefusesBadListenAddresses) {
  detail::HostPort hp;
  EXPECT_EQ(detail::parseListenAddress("0.0.0.0", hp),
            "invalid address \"0.0.0.0\" (use host:port, e.g. 0.0.0.0:8080 or [::]:8080)");
  EXPECT_EQ(detail::parseListenAddress("localhost:80", hp),
            "invalid address \"localhost:80\": the host must be a numeric IP address, like "
            "127.0.0.1 or [::1]");
  EXPECT_EQ(detail::parseListenAddress("0.0.0.0:65536", hp),
            "invalid port \"65536\" in address \"0.0.0.0:65536\" (use 1 to 65535)");
  EXPECT_TRUE(detail::parseListenAddress("0.0.0.0:0", hp));
  EXPECT_TRUE(detail::parseListenAddress("0.0.0.0:+80", hp));
  EXPECT_TRUE(detail::parseListenAddress("::1:80", hp));
  EXPECT_TRUE(detail::parseListenAddress("[::1]", hp));
  EXPECT_TRUE(detail::parseListenAddress("[1.2.3.4]:80", hp));
}

TEST(ConfigValues, ParsesEndpointsKeepingTheHostAsWritten) {
  Endpoint e;
  EXPECT_FALSE(detail::parseEndpoint("users.internal:80", e));
  EXPECT_EQ(e.host, "users.internal");
  EXPECT_EQ(e.port, 80);
  EXPECT_EQ(e.text, "users.internal:80");
  EXPECT_FALSE(detail::parseEndpoint("[2001:db8::1]:443", e));
  EXPECT_EQ(e.host, "2001:db8::1");
  EXPECT_FALSE(detail::parseEndpoint("127.0.0.1:9001", e));
  EXPECT_FALSE(detail::parseEndpoint("localhost:9001", e));
}

TEST(ConfigValues, RefusesBadEndpoints) {
  Endpoint e;
  EXPECT_EQ(detail::parseEndpoint("http://users:80", e),
            "invalid endpoint \"http://users:80\" (write host:port, without a scheme)");
  EXPECT_TRUE(detail::parseEndpoint("users", e));
  EXPECT_TRUE(detail::parseEndpoint("users:0", e));
  EXPECT_TRUE(detail::parseEndpoint("us ers:80", e));
  EXPECT_TRUE(detail::parseEndpoint("999.1.1.1:80", e));
  EXPECT_TRUE(detail::parseEndpoint("-bad.example:80", e));
  EXPECT_TRUE(detail::parseEndpoint("::1:80", e));
}

TEST(ConfigValues, StoresIpv4CidrsAsMappedIpv6) {
  Cidr c;
  ASSERT_FALSE(detail::parseCidr("10.0.0.0/8", c));
  EXPECT_EQ(c.prefix_len, 96 + 8);
  EXPECT_EQ(c.address[10], 0xff);
  EXPECT_EQ(c.address[11], 0xff);
  EXPECT_EQ(c.address[12], 10);
  EXPECT_EQ(c.text, "10.0.0.0/8");
  ASSERT_FALSE(detail::parseCidr("192.0.2.7", c));
  EXPECT_EQ(c.prefix_len, 128);
  ASSERT_FALSE(detail::parseCidr("2001:db8::/32", c));
  EXPECT_EQ(c.prefix_len, 32);
  EXPECT_EQ(c.address[0], 0x20);
  ASSERT_FALSE(detail::parseCidr("::/0", c));
  EXPECT_EQ(c.prefix_len, 0);
}

TEST(ConfigValues, RefusesBadCidrs) {
  Cidr c;
  EXPECT_EQ(detail::parseCidr("10.0.0.1/8", c),
            "invalid CIDR \"10.0.0.1/8\": bits are set after the prefix length (did you mean "
            "\"10.0.0.0/8\"?)");
  EXPECT_EQ(detail::parseCidr("10.0.0.0/33", c),
            "invalid CIDR \"10.0.0.0/33\": the prefix length must be 0 to 32");
  EXPECT_TRUE(detail::parseCidr("10.0.0/8", c));
  EXPECT_TRUE(detail::parseCidr("10.0.0.0/", c));
  EXPECT_TRUE(detail::parseCidr("10.0.0.0/-1", c));
  EXPECT_TRUE(detail::parseCidr("fd00::/129", c));
  EXPECT_TRUE(detail::parseCidr("example.com", c));
}

TEST(ConfigValues, ChecksHostPatterns) {
  std::string out;
  EXPECT_FALSE(detail::checkHostPattern("API.Example.com", out));
  EXPECT_EQ(out, "api.example.com");
  EXPECT_FALSE(detail::checkHostPattern("*.example.com", out));
  EXPECT_TRUE(detail::checkHostPattern("a*.example.com", out));
  EXPECT_TRUE(detail::checkHostPattern("*.*.example.com", out));
  EXPECT_TRUE(detail::checkHostPattern("example.*", out));
  EXPECT_TRUE(detail::checkHostPattern("*", out));
  EXPECT_EQ(detail::checkHostPattern("api.example.com:443", out),
            "invalid host \"api.example.com:443\" (leave the port out)");
  EXPECT_TRUE(detail::checkHostPattern("", out));
  EXPECT_TRUE(detail::checkHostPattern("a..b", out));
}

detail::Problem literalPath(std::string_view key, std::string_view path) {
  return detail::checkPath(key, path, detail::PathSyntax::Literal, nullptr);
}

detail::Problem templatePath(std::string_view path, std::vector<std::string>* params) {
  return detail::checkPath("path", path, detail::PathSyntax::Template, params);
}

detail::Problem rewritePath(std::string_view path, std::vector<std::string>* params) {
  return detail::checkPath("rewrite.path", path, detail::PathSyntax::Rewrite, params);
}

TEST(ConfigValues, AcceptsNormalizedPaths) {
  EXPECT_FALSE(literalPath("path_prefix", "/"));
  EXPECT_FALSE(literalPath("path_prefix", "/users"));
  EXPECT_FALSE(literalPath("path_exact", "/users/"));
  EXPECT_FALSE(literalPath("path_exact", "/a:b@c/~x/%20y/%C3%A9"));
}

TEST(ConfigValues, RefusesPathsThatNoNormalizedRequestCanHave) {
  EXPECT_EQ(literalPath("path_prefix", "users"), "path_prefix \"users\" must start with '/'");
  EXPECT_EQ(literalPath("path_prefix", "/a//b"),
            "path_prefix \"/a//b\" is not normalized (write \"/a/b\")");
  EXPECT_EQ(literalPath("path_prefix", "/a/./b"),
            "path_prefix \"/a/./b\" is not normalized (write \"/a/b\")");
  EXPECT_EQ(literalPath("path_prefix", "/a/../b"),
            "path_prefix \"/a/../b\" is not normalized (write \"/b\")");
  EXPECT_EQ(literalPath("path_exact", "/%7Euser"),
            "path_exact \"/%7Euser\" is not normalized (write \"/~user\")");
  EXPECT_EQ(literalPath("path_exact", "/%3a"),
            "path_exact \"/%3a\" is not normalized (write \"/%3A\")");
  EXPECT_EQ(literalPath("path_exact", "/a?b=1"),
            "path_exact \"/a?b=1\" must not contain '?' (match query parameters with \"query\")");
  EXPECT_EQ(literalPath("path_exact", "/a#b"), "path_exact \"/a#b\" must not contain '#'");
  EXPECT_EQ(literalPath("path_exact", "/a b"),
            "path_exact \"/a b\" contains ' ', which is not allowed in a path (percent-encode it)");
  EXPECT_TRUE(literalPath("path_exact", "/caf\xc3\xa9"));
  EXPECT_TRUE(literalPath("path_exact", "/a%2Fb"));
  EXPECT_TRUE(literalPath("path_exact", "/a%zz"));
  EXPECT_TRUE(literalPath("path_exact", "/a%2"));
  EXPECT_TRUE(literalPath("path_exact", std::string_view("/a\0b", 4)));
  EXPECT_EQ(literalPath("path_exact", "/users/{id}"),
            "path_exact \"/users/{id}\" contains '{' or '}' (use \"path\" for a template like "
            "/users/{id})");
}

TEST(ConfigValues, ParsesTemplateParameters) {
  std::vector<std::string> params;
  EXPECT_FALSE(templatePath("/users/{id}/orders/{order_id}", &params));
  EXPECT_EQ(params, (std::vector<std::string>{"id", "order_id"}));
  params.clear();
  EXPECT_EQ(templatePath("/users/x{id}", &params),
            "invalid path template \"/users/x{id}\": a parameter must be a whole segment, like "
            "/users/{id}");
  EXPECT_EQ(templatePath("/u/{1d}", &params),
            "invalid parameter name \"1d\" in path template \"/u/{1d}\" (use letters, digits and "
            "'_', not starting with a digit)");
  EXPECT_EQ(templatePath("/a/{id}/b/{id}", &params),
            "duplicate parameter \"{id}\" in path template \"/a/{id}/b/{id}\"");
  EXPECT_TRUE(templatePath("/a/{}", &params));
  EXPECT_TRUE(templatePath("/a/{{x}}", &params));
  EXPECT_TRUE(templatePath("/a/{x", &params));
}

TEST(ConfigValues, AllowsRewriteParametersInsideSegments) {
  std::vector<std::string> params;
  EXPECT_FALSE(rewritePath("/v2/users/{id}.json", &params));
  EXPECT_FALSE(rewritePath("/{id}/{id}", &params));
  EXPECT_EQ(params, (std::vector<std::string>{"id", "id", "id"}));
  EXPECT_EQ(rewritePath("/a/{x", &params),
            "invalid rewrite.path \"/a/{x\": a '{' or '}' that is not part of a {name} parameter");
  EXPECT_TRUE(rewritePath("/a/}", &params));
  EXPECT_TRUE(rewritePath("/a/{9}", &params));
  EXPECT_EQ(rewritePath("/a//{id}", &params),
            "rewrite.path \"/a//{id}\" is not normalized (write \"/a/{id}\")");
}

TEST(ConfigValues, ChecksRegexesWithRe2) {
  EXPECT_FALSE(detail::checkRegex("^/v[0-9]+/"));
  EXPECT_EQ(detail::checkRegex("("), "missing ): (");
  // Backreferences are not RE2 syntax.
  EXPECT_TRUE(detail::checkRegex("(a)\\1"));
}

TEST(ConfigValues, ChecksTokens) {
  EXPECT_TRUE(detail::isToken("X-Api-Version"));
  EXPECT_TRUE(detail::isToken("GET"));
  EXPECT_FALSE(detail::isToken(""));
  EXPECT_FALSE(detail::isToken("X Api"));
  EXPECT_FALSE(detail::isToken("X:Api"));
  EXPECT_FALSE(detail::isToken(std::string_view("X\0", 2)));
}

TEST(ConfigValues, SuggestsCloseNames) {
  constexpr std::string_view kKeys[] = {"path_prefix", "path", "path_exact", "methods"};
  EXPECT_EQ(detail::closestMatch("pathprefix", kKeys), "path_prefix");
  EXPECT_EQ(detail::closestMatch("PATH_PREFIX", kKeys), "path_prefix");
  EXPECT_EQ(detail::closestMatch("mehtods", kKeys), "methods");
  EXPECT_EQ(detail::closestMatch("hosts", kKeys), std::nullopt);
  EXPECT_EQ(detail::closestMatch("a", kKeys), std::nullopt);
  EXPECT_EQ(detail::editDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(detail::editDistance("ab", "ba"), 1u);
  EXPECT_EQ(detail::editDistance("", "abc"), 3u);
}

}  // namespace
}  // namespace portico::config
