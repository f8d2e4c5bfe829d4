// The auth filter on its own: a fast answer in the phase, and a slow check that pauses the
// request and comes back on the loop (or, when the request ended meanwhile, reaches nobody).
#include "filters/auth/auth.hpp"

#include <gtest/gtest.h>

#include "auth/token_cache.hpp"
#include "auth/verify_pool.hpp"
#include "config/loader.hpp"
#include "filters/filter_testing.hpp"
#include "net/event_loop.hpp"

namespace portico::filters {
namespace {

// sha512-crypt of "secret" (cheap rounds: a test, not a policy).
constexpr std::string_view kHash =
    "$6$rounds=1000$TGmWKMnPOGze1/G5$As3IuYBXmp0eDZ79B8ANwMYEF5odkOgB12f/"
    "6NpXXryuWePHJsGKDL3PKH2WTpYQ"
    "817sb6bSibY3GqwK3NyXP0";

config::Config loadConfig() {
  std::string yaml = R"(listeners: [{address: 127.0.0.1:8080}]
upstreams: {echo: {builtin: echo}}
auth_providers: {keys: {type: api_key}, passwords: {type: basic}}
consumers:
  - {name: alice, api_keys: [k-alice], basic_auth: {username: alice, password_hash: ")" +
                     std::string(kHash) + R"("}}
routes:
  - {name: r, match: {path_prefix: /}, upstream: echo, auth: [keys, passwords]}
)";
  config::LoadResult r = config::loadConfigString(
      yaml, "t.yaml", [](const std::string&) { return std::optional<std::string>(); });
  EXPECT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].format());
  return r.config ? std::move(*r.config) : config::Config{};
}

// The stream and its surroundings, as the session provides them.
class FakeStream final : public FilterCallbacks, public testing::UnusedEnvironment {
 public:
  explicit FakeStream(const auth::Authenticator& authenticator)
      : cache_(authenticator.makeCache()) {}
  void reply(const Reply& r) override {
    ++replies;
    status = http::statusOf(r.code);
    www_authenticate.assign(r.www_authenticate);
    loop_.stop();
  }
  void resume() override {
    ++resumes;
    loop_.stop();
  }
  StreamEnvironment* environment() override { return this; }
  const tls::PeerCertificate* clientCertificate() override { return nullptr; }
  auth::Identity& identity() override { return identity_; }
  void markAuthenticated() override { authenticated = true; }
  net::EventLoop& loop() override { return loop_; }
  std::shared_ptr<const void> holdSnapshot() override { return nullptr; }
  auth::TokenCache* tokenCache() override { return cache_.get(); }
  const std::vector<std::shared_ptr<const auth::jwt::KeySet>>* fetchedKeys() override {
    return nullptr;
  }
  void unknownKid(uint32_t) override {}
  auth::VerifyPool* verifyPool(bool) override { return &pool_; }

  // Runs the loop until the filter answers, or `ms` pass.
  void waitFor(uint64_t ms) {
    struct Stop final : net::Timed {
      explicit Stop(net::EventLoop& l) : loop(l) {}
      void onTimer() override { loop.stop(); }
      net::EventLoop& loop;
    } stop(loop_);
    loop_.setTimeout(stop, ms);
    loop_.run();
  }

  int replies = 0;
  int resumes = 0;
  int status = 0;
  std::string www_authenticate;
  bool authenticated = false;
  auth::Identity identity_;

 private:
  net::EventLoop loop_;
  auth::VerifyPool pool_{1, 16};
  std::unique_ptr<auth::TokenCache> cache_;
};

struct Fixture {
  config::Config config = loadConfig();
  std::vector<std::string> errors;
  auth::Authenticator authenticator{config, errors};
  AuthFactory factory{authenticator,
                      {static_cast<uint32_t>(authenticator.providerIndex("keys")),
                       static_cast<uint32_t>(authenticator.providerIndex("passwords"))},
                      std::nullopt};
};

RequestInfo requestWith(const std::vector<http::HeaderField>& headers) {
  net::SocketAddress client;
  return RequestInfo{client, "GET", headers, {}, client};
}

TEST(AuthFilter, ApiKeyAuthenticatesInThePhase) {
  Fixture f;
  ASSERT_TRUE(f.errors.empty());
  FakeStream stream(f.authenticator);
  Arena arena;
  std::vector<http::HeaderField> headers{{"X-API-Key", "k-alice"}};
  EXPECT_EQ(f.factory.create(arena).onRequestHeaders(stream, requestWith(headers)),
            FilterStatus::Continue);
  EXPECT_TRUE(stream.authenticated);
  ASSERT_NE(stream.identity_.consumer, nullptr);
  EXPECT_EQ(stream.identity_.consumer->name, "alice");
  EXPECT_EQ(stream.replies, 0);
  EXPECT_EQ(stream.upstream_fields, "X-Consumer-Name: alice\r\n");
}

TEST(AuthFilter, NoCredentialIsA401WithItsChallenge) {
  Fixture f;
  FakeStream stream(f.authenticator);
  Arena arena;
  std::vector<http::HeaderField> headers{{"Accept", "*/*"}};
  EXPECT_EQ(f.factory.create(arena).onRequestHeaders(stream, requestWith(headers)),
            FilterStatus::Replied);
  EXPECT_EQ(stream.status, 401);
  EXPECT_NE(stream.www_authenticate.find("Basic"), std::string::npos) << stream.www_authenticate;
  EXPECT_FALSE(stream.authenticated);
  EXPECT_EQ(stream.upstream_fields, "");
}

TEST(AuthFilter, PasswordsAreCheckedOffTheLoopWhileTheRequestWaits) {
  Fixture f;
  FakeStream stream(f.authenticator);
  Arena arena;
  Filter& filter = f.factory.create(arena);
  // "alice:secret"
  std::vector<http::HeaderField> good{{"Authorization", "Basic YWxpY2U6c2VjcmV0"}};
  EXPECT_EQ(filter.onRequestHeaders(stream, requestWith(good)), FilterStatus::StopIteration);
  EXPECT_EQ(stream.resumes + stream.replies, 0);  // not before the loop runs
  stream.waitFor(5000);
  EXPECT_EQ(stream.resumes, 1);
  EXPECT_EQ(stream.replies, 0);
  EXPECT_TRUE(stream.authenticated);
  filter.onComplete({200, false});

  FakeStream other(f.authenticator);
  Arena arena2;
  Filter& refused = f.factory.create(arena2);
  // "alice:wrong"
  std::vector<http::HeaderField> bad{{"Authorization", "Basic YWxpY2U6d3Jvbmc="}};
  EXPECT_EQ(refused.onRequestHeaders(other, requestWith(bad)), FilterStatus::StopIteration);
  other.waitFor(5000);
  EXPECT_EQ(other.replies, 1);
  EXPECT_EQ(other.status, 401);
  EXPECT_EQ(other.resumes, 0);
  refused.onComplete({401, false});
}

TEST(AuthFilter, AnAnswerForARequestThatEndedReachesNobody) {
  Fixture f;
  FakeStream stream(f.authenticator);
  Arena arena;
  Filter& filter = f.factory.create(arena);
  std::vector<http::HeaderField> good{{"Authorization", "Basic YWxpY2U6c2VjcmV0"}};
  EXPECT_EQ(filter.onRequestHeaders(stream, requestWith(good)), FilterStatus::StopIteration);
  filter.onComplete({0, true});  // the client went away
  arena.reset();                 // and the filter with the request
  stream.waitFor(300);
  EXPECT_EQ(stream.resumes, 0);
  EXPECT_EQ(stream.replies, 0);
  EXPECT_FALSE(stream.authenticated);
}

}  // namespace
}  // namespace portico::filters
