#pragma once
// For filters' unit tests: a stream that records what its filters asked of it.

#include <optional>
#include <stdexcept>
#include <string>

#include "config/loader.hpp"
#include "filters/environment.hpp"
#include "filters/filter.hpp"

namespace portico::filters::testing {

// A config with one route whose `key` is `value` (a filter's config), as the loader reads it.
inline config::LoadResult loadRouteWith(std::string_view key, std::string_view value) {
  std::string yaml =
      "listeners: [{address: 127.0.0.1:8080}]\n"
      "upstreams: {echo: {builtin: echo}}\n"
      "routes:\n"
      "  - {name: r, match: {path_prefix: /}, upstream: echo, auth: public, " +
      std::string(key) + ": " + std::string(value) + "}\n";
  return config::loadConfigString(yaml, "t.yaml",
                                  [](const std::string&) { return std::optional<std::string>(); });
}

struct RecordingStream final : FilterCallbacks {
  void reply(const Reply& r) override {
    ++replies;
    last_reply = r;
    reply_message.assign(r.message);
  }
  void resume() override { ++resumes; }

  int replies = 0;
  int resumes = 0;
  std::optional<Reply> last_reply;
  std::string reply_message;  // last_reply's message, kept
};

// A StreamEnvironment whose every service fails the test when used; a test overrides the
// ones its filter needs.
class UnusedEnvironment : public StreamEnvironment {
 public:
  const tls::PeerCertificate* clientCertificate() override { return nullptr; }
  auth::Identity& identity() override { throw unused("identity"); }
  void markAuthenticated() override { throw unused("markAuthenticated"); }
  bool authenticated() const override { return false; }
  std::string_view limitClientKey(std::string&) override { throw unused("limitClientKey"); }
  void editUpstreamRequest(const http::FieldEdits&) override { throw unused("edits"); }
  void limitRequestBody(uint64_t) override { throw unused("limitRequestBody"); }
  std::string& upstreamFields() override { return upstream_fields; }
  std::string upstream_fields;  // what the filters added for the upstream
  ratelimit::LimitScratch& limitScratch() override { throw unused("limitScratch"); }
  void countAuthFailure(std::string_view provider, std::string_view reason) override {
    counted.push_back(std::string(provider) + "/" + std::string(reason));
  }
  void countRateLimited(std::string_view key) override {
    counted.push_back("rate_limited/" + std::string(key));
  }
  std::vector<std::string> counted;  // what the filters reported for the metrics
  net::EventLoop& loop() override { throw unused("loop"); }
  std::shared_ptr<const void> holdSnapshot() override { return nullptr; }
  auth::TokenCache* tokenCache() override { return nullptr; }
  const std::vector<std::shared_ptr<const auth::jwt::KeySet>>* fetchedKeys() override {
    return nullptr;
  }
  void unknownKid(uint32_t) override {}
  auth::VerifyPool* verifyPool(bool) override { return nullptr; }
  std::atomic<int64_t>& concurrencyCounter(uint32_t, const std::string&) override {
    throw unused("concurrencyCounter");
  }
  ratelimit::LocalStore& localStore() override { throw unused("localStore"); }
  ratelimit::SyncStore& syncStore() override { throw unused("syncStore"); }
  bool callRedis(std::span<const std::string_view>, std::span<const std::string_view>,
                 ratelimit::RedisWaiter&) override {
    return false;
  }
  void resumeAt(uint64_t) override { throw unused("resumeAt"); }

 private:
  static std::logic_error unused(const char* what) {
    return std::logic_error(std::string("the test's environment has no ") + what);
  }
};

}  // namespace portico::filters::testing
