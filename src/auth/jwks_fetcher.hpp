#pragma once
// Key sets of `jwks_url` providers (SPEC §3): fetched at start and on reload, again every
// `refresh`, and soon (at most every kRefetchGap per URL) when a worker meets a token whose kid
// the set lacks. A failed fetch keeps the last good set. Runs on the control thread; the HTTP
// request itself runs on a thread of its own, so a slow IdP never holds up the admin API,
// reloads or signals. New sets reach the workers through `publish`.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "auth/jwt/jwk.hpp"
#include "config/model.hpp"
#include "net/event_loop.hpp"

namespace portico::auth {

class JwksFetcher {
 public:
  using KeySetPtr = std::shared_ptr<const jwt::KeySet>;
  using PublishFn = std::function<void(const std::string& url, KeySetPtr keys)>;

  static constexpr std::chrono::milliseconds kFetchTimeout{3000};
  static constexpr uint64_t kRefetchGapMs = 2000;

  JwksFetcher(net::EventLoop& loop, PublishFn publish);
  ~JwksFetcher();
  JwksFetcher(const JwksFetcher&) = delete;
  JwksFetcher& operator=(const JwksFetcher&) = delete;

  // Before a config is used: a jwks_url without a good set yet is fetched now, on this thread
  // (bounded by kFetchTimeout), so the new snapshot starts with its keys.
  void prepare(const config::Config& config);
  // Once the config is in force: its URLs are the ones kept fresh (and fetched again now, in the
  // background); the others are no longer refreshed.
  void activate(const config::Config& config);
  // The last good set for `url`, or null.
  KeySetPtr keys(const std::string& url) const;
  // A worker met an unknown kid: fetch soon, unless a fetch is under way or was just made.
  void unknownKid(const std::string& url);

 private:
  struct Source {
    std::string url;
    std::string ca;
    uint64_t refresh_ms = 300'000;
    KeySetPtr keys;
    uint64_t last_start_ms = 0;
    bool in_flight = false;
    bool fetched_by_prepare = false;
    std::thread thread;
    std::unique_ptr<net::Timed> timer;
  };
  class RefreshTimer;

  void start(Source& source);
  void finished(const std::string& url, KeySetPtr keys, std::string error);
  static KeySetPtr fetch(const std::string& url, const std::string& ca, std::string& error);

  net::EventLoop& loop_;
  PublishFn publish_;
  std::map<std::string, std::unique_ptr<Source>> sources_;
};

}  // namespace portico::auth
