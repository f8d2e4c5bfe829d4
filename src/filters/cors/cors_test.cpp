#include "filters/cors/cors.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "config/loader.hpp"
#include "filters/filter_testing.hpp"

namespace portico::filters {
namespace {

config::LoadResult load(std::string_view cors) { return testing::loadRouteWith("cors", cors); }

CorsFactory filterOf(std::string_view cors) {
  config::LoadResult r = load(cors);
  EXPECT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format());
  return CorsFactory(r.config ? *r.config->routes[0].cors : CorsConfig{});
}

std::string firstError(std::string_view cors) {
  config::LoadResult r = load(cors);
  EXPECT_FALSE(r.config);
  return r.errors.empty() ? "" : r.errors[0].format();
}

struct Outcome {
  std::optional<Reply> reply;
  std::string headers;  // what the response (the upstream's, or the reply) gets
};

// One request through a fresh filter: its request head, then the response head.
Outcome run(const CorsFactory& factory, std::string_view method,
            std::vector<std::pair<std::string, std::string>> head) {
  net::SocketAddress client;
  Arena arena;
  testing::RecordingStream stream;
  Filter& filter = factory.create(arena);
  Outcome out;
  std::vector<http::HeaderField> fields;
  for (const auto& [name, value] : head) fields.push_back({name, value});
  FilterStatus status = filter.onRequestHeaders(stream, RequestInfo{client, method, fields});
  EXPECT_EQ(status == FilterStatus::Replied, stream.replies == 1);
  out.reply = stream.last_reply;
  // The request head's bytes may be overwritten by the time the response comes.
  for (auto& [name, value] : head) std::fill(value.begin(), value.end(), '#');
  ResponseInfo response{out.reply ? 204 : 200, out.headers};
  EXPECT_EQ(filter.onResponseHeaders(stream, response), FilterStatus::Continue);
  return out;
}

constexpr std::string_view kPolicy =
    "{origins: [\"https://App.example.com\"], methods: [get, POST], headers: [Authorization], "
    "expose_headers: [X-Request-Id, X-Up], credentials: true, max_age: 10m}";

TEST(Cors, AllowedPreflightIsAnsweredWithThePolicy) {
  CorsFactory f = filterOf(kPolicy);
  Outcome o =
      run(f, "OPTIONS",
          {{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(o.reply);
  EXPECT_EQ(o.reply->empty_status, 204);
  EXPECT_EQ(o.headers,
            "Vary: Origin\r\n"
            "Access-Control-Allow-Origin: https://app.example.com\r\n"
            "Access-Control-Allow-Methods: GET, POST\r\n"
            "Access-Control-Allow-Headers: Authorization\r\n"
            "Access-Control-Max-Age: 600\r\n"
            "Access-Control-Allow-Credentials: true\r\n");
}

TEST(Cors, PreflightForAnotherOriginOrMethodIsAnsweredWithoutAllowOrigin) {
  CorsFactory f = filterOf(kPolicy);
  for (auto [origin, method] :
       {std::pair{"https://evil.example", "POST"}, std::pair{"https://app.example.com", "DELETE"},
        std::pair{"https://app.example.com.evil.example", "GET"}}) {
    Outcome o = run(f, "OPTIONS", {{"Origin", origin}, {"Access-Control-Request-Method", method}});
    ASSERT_TRUE(o.reply) << origin << " " << method;
    EXPECT_EQ(o.reply->empty_status, 204);
    EXPECT_EQ(o.headers, "Vary: Origin\r\n") << origin << " " << method;
  }
}

TEST(Cors, ActualRequestFromAnAllowedOriginGetsTheResponseFields) {
  CorsFactory f = filterOf(kPolicy);
  Outcome o = run(f, "GET", {{"origin", "https://app.example.com"}});
  EXPECT_FALSE(o.reply);
  EXPECT_EQ(o.headers,
            "Vary: Origin\r\n"
            "Access-Control-Allow-Origin: https://app.example.com\r\n"
            "Access-Control-Allow-Credentials: true\r\n"
            "Access-Control-Expose-Headers: X-Request-Id, X-Up\r\n");
}

TEST(Cors, OtherRequestsAreLeftAlone) {
  CorsFactory f = filterOf(kPolicy);
  Outcome none = run(f, "GET", {{"Host", "a"}});
  EXPECT_FALSE(none.reply);
  EXPECT_EQ(none.headers, "");
  Outcome other = run(f, "POST", {{"Origin", "https://evil.example"}});
  EXPECT_FALSE(other.reply);
  EXPECT_EQ(other.headers, "Vary: Origin\r\n");
  // OPTIONS without Access-Control-Request-Method is an ordinary request.
  Outcome options = run(f, "OPTIONS", {{"Origin", "https://app.example.com"}});
  EXPECT_FALSE(options.reply);
  EXPECT_NE(options.headers.find("Access-Control-Allow-Origin: https://app.example.com\r\n"),
            std::string::npos);
}

TEST(Cors, AnyOriginIsEchoedNeverStarAndNullIsNotAny) {
  CorsFactory f = filterOf("{origins: [\"*\"], credentials: true}");
  Outcome o = run(f, "OPTIONS",
                  {{"Origin", "https://x.example"},
                   {"Access-Control-Request-Method", "PUT"},
                   {"Access-Control-Request-Headers", "x-a, content-type"}});
  ASSERT_TRUE(o.reply);
  EXPECT_NE(o.headers.find("Access-Control-Allow-Origin: https://x.example\r\n"),
            std::string::npos);
  EXPECT_EQ(o.headers.find("Access-Control-Allow-Origin: *"), std::string::npos);
  // Without a configured list, the asked-for headers are allowed; default methods include PUT.
  EXPECT_NE(o.headers.find("Access-Control-Allow-Headers: x-a, content-type\r\n"),
            std::string::npos)
      << o.headers;
  EXPECT_NE(o.headers.find("Access-Control-Allow-Methods: GET, HEAD, POST, PUT, PATCH, DELETE\r\n"),
            std::string::npos)
      << o.headers;
  EXPECT_EQ(o.headers.find("Max-Age"), std::string::npos);
  Outcome null_origin = run(f, "GET", {{"Origin", "null"}});
  EXPECT_EQ(null_origin.headers, "Vary: Origin\r\n");
}

TEST(Cors, ConfigErrorsNameTheProblem) {
  EXPECT_NE(firstError("{methods: [GET]}").find("missing required key \"origins\""),
            std::string::npos);
  EXPECT_NE(firstError("{origins: []}").find("empty"), std::string::npos);
  EXPECT_NE(firstError("{origins: [app.example.com]}").find("needs a scheme"), std::string::npos);
  EXPECT_NE(firstError("{origins: [\"https://a.example/x\"]}").find("must not have a path"),
            std::string::npos);
  EXPECT_NE(firstError("{origins: [\"*\"], methods: [\"GE T\"]}").find("invalid method"),
            std::string::npos);
  EXPECT_NE(firstError("{origins: [\"*\"], headers: [\"a:b\"]}").find("invalid header"),
            std::string::npos);
  EXPECT_NE(firstError("{origins: [\"*\"], max_age: soon}").find("invalid duration \"soon\""),
            std::string::npos);
  EXPECT_NE(firstError("{origins: [\"*\"], allow_all: true}").find("allow_all"), std::string::npos);
}

}  // namespace
}  // namespace portico::filters
