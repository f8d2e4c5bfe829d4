#include "ratelimit/redis_sync.hpp"

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "ratelimit/sync_script.hpp"
#include "ratelimit/sync_store.hpp"

namespace portico::ratelimit {
namespace {

// Items per script call: a call runs alone in Redis, so a large batch goes as several.
constexpr size_t kItemsPerCall = 256;

std::string makeGatewayId() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device random;
  char tail[32];
  std::snprintf(tail, sizeof tail, "-%d-%08x", static_cast<int>(getpid()), random());
  return std::string(host) + tail;
}

}  // namespace

class RedisSync::Runner final : public net::Timed, public RedisWaiter {
 public:
  Runner(net::EventLoop& loop, SyncStore& store, const std::string& id)
      : loop_(loop), store_(store), id_(id) {}
  // Runs after the loop stopped (the process is ending): the clients just close, quietly.
  ~Runner() override = default;

  void configure(std::optional<SyncSettings> settings) {
    if (!settings) {
      if (client_) client_->shutdown();
    } else {
      RedisSettings r = settings->redis;
      r.while_down = "batched rate limits admit this gateway's share until it answers";
      if (client_) {
        client_->configure(std::move(r));
      } else {
        client_ = std::make_unique<RedisClient>(loop_, std::move(r), std::string(kSyncScript));
      }
    }
    if (settings) {
      // Leases and counts belong to the Redis and prefix they came from: with others, this
      // gateway starts afresh, as a per-request limit does.
      std::string home = settings->redis.address_text + '\n' + settings->key_prefix;
      if (!home_.empty() && home != home_) store_.clear();
      home_ = std::move(home);
    }
    // The first sync at once: until it, this gateway counts itself as the whole fleet.
    const bool first = !settings_ && settings;
    settings_ = std::move(settings);
    loop_.setTimeout(*this, !settings_ ? 0 : first ? 1 : settings_->interval_ms);
  }

  void onTimer() override {
    if (!settings_) return;
    loop_.setTimeout(*this, settings_->interval_ms);
    if (outstanding_ == 0 && client_) tick();
  }

  // Replies come only from a client made for settings_ (a replaced one answers its callers
  // before settings_ changes), so settings_ is set here and in fail().
  void onRedisReply(uint32_t tag, const redisReply* reply) override {
    if (tag >= calls_.size() || calls_[tag].done) return;
    Call& call = calls_[tag];
    if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && !call.retried &&
        std::string_view(reply->str, reply->len).starts_with("NOSCRIPT")) {
      call.retried = true;  // the client loads the script again ahead of this
      if (send(tag)) return;
    }
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 1 + 4 * call.count) {
      fail(tag);
      return;
    }
    auto number = [reply](size_t i) -> int64_t {
      const redisReply* e = reply->element[i];
      return e->type == REDIS_REPLY_INTEGER ? static_cast<int64_t>(e->integer) : 0;
    };
    if (store_.redisDown()) {
      store_.setRedisDown(false);
      // Other gateways may take this long to report what they admitted during the outage:
      // their reconnect backoff, an interval, a timeout.
      const int64_t grace_ms = static_cast<int64_t>(
          RedisClient::kMaxBackoffMs + 3 * settings_->interval_ms + settings_->redis.timeout_ms);
      store_.capToOwnShareUntil(unixNs() + grace_ms * 1'000'000);
      LOG_INFO("redis %s answers again: batched rate limits share the fleet's counts",
               settings_->redis.address_text.c_str());
    }
    store_.setFleetSize(number(0));
    for (size_t i = 0; i < call.count; ++i) {
      const size_t base = 1 + 4 * i;
      store_.applyAnswer(items_[call.first + i],
                         {number(base), number(base + 1), number(base + 2), number(base + 3)});
    }
    finish(tag);
  }

 private:
  struct Call {
    size_t first = 0;
    size_t count = 0;
    std::vector<std::string> keys;
    std::vector<std::string> args;
    bool retried = false;
    bool done = false;
  };

  void tick() {
    const int64_t now = unixNs();
    store_.takeBatch(now, items_);
    calls_.clear();
    // Even with nothing to count, one call keeps this gateway among the live ones.
    for (size_t first = 0; first < items_.size() || calls_.empty(); first += kItemsPerCall) {
      calls_.push_back(build(first, std::min(kItemsPerCall, items_.size() - first), now));
    }
    outstanding_ = calls_.size();
    for (size_t i = 0; i < calls_.size(); ++i) {
      if (!send(static_cast<uint32_t>(i))) fail(static_cast<uint32_t>(i));
    }
    if (client_) client_->flush();
  }

  Call build(size_t first, size_t count, int64_t now) {
    const SyncSettings& s = *settings_;
    Call call;
    call.first = first;
    call.count = count;
    call.keys.reserve(1 + 2 * count);
    call.args.reserve(2 + 6 * count);
    call.keys.push_back(s.key_prefix + "sync:gateways");
    call.args.push_back(id_);
    call.args.push_back(std::to_string((3 * s.interval_ms + s.redis.timeout_ms) * 1000));
    for (size_t i = first; i < first + count; ++i) {
      const SyncStore::Item& item = items_[i];
      const int64_t window = item.params.window_ns;
      const int64_t index = item.window_start_ns / window;
      std::string cur = s.key_prefix + item.key + ":b" + std::to_string(index);
      std::string prev = item.weight_ppm > 0
                             ? s.key_prefix + item.key + ":b" + std::to_string(index - 1)
                             : cur;
      // Kept while the window counts: to its end, and one more window when it slides.
      const bool sliding = item.params.algorithm == config::RateLimit::Algorithm::SlidingWindow;
      const int64_t ttl_ms =
          std::max<int64_t>(0, item.window_start_ns + window * (sliding ? 2 : 1) - now) /
              1'000'000 + 1'000;
      call.keys.push_back(std::move(cur));
      call.keys.push_back(std::move(prev));
      call.args.push_back(std::string(1, static_cast<char>(item.op)));
      call.args.push_back(std::to_string(item.delta));
      call.args.push_back(std::to_string(item.params.limit));
      call.args.push_back(std::to_string(item.weight_ppm));
      call.args.push_back(std::to_string(ttl_ms));
      call.args.push_back(std::to_string(item.standby));
    }
    return call;
  }

  bool send(uint32_t tag) {
    if (!client_) return false;
    const Call& call = calls_[tag];
    std::vector<std::string_view> keys(call.keys.begin(), call.keys.end());
    std::vector<std::string_view> args(call.args.begin(), call.args.end());
    return client_->evalScript(keys, args, this, tag);
  }

  void fail(uint32_t tag) {
    Call& call = calls_[tag];
    for (size_t i = 0; i < call.count; ++i) store_.applyFailure(items_[call.first + i]);
    if (!store_.redisDown()) {
      store_.setRedisDown(true);
      LOG_WARN("redis %s did not answer the rate limit sync: batched limits admit this "
               "gateway's share (1/%lld of each limit) until it does",
               settings_->redis.address_text.c_str(),
               static_cast<long long>(store_.fleetSize()));
    }
    finish(tag);
  }

  void finish(uint32_t tag) {
    calls_[tag].done = true;
    --outstanding_;
  }

  net::EventLoop& loop_;
  SyncStore& store_;
  const std::string& id_;
  std::optional<SyncSettings> settings_;
  std::string home_;  // the Redis address and key prefix the store's leases came from
  // Made with the first batched config, then reconfigured or shut down; destroyed only after
  // the loop stopped, since its timer heap may name it.
  std::unique_ptr<RedisClient> client_;
  std::vector<SyncStore::Item> items_;
  std::vector<Call> calls_;
  size_t outstanding_ = 0;
};

RedisSync::RedisSync(SyncStore& store)
    : gateway_id_(makeGatewayId()),
      runner_(std::make_unique<Runner>(loop_, store, gateway_id_)),
      thread_([this] { loop_.run(); }) {}

RedisSync::~RedisSync() {
  loop_.post([this] { loop_.stop(); });
  thread_.join();
  // With the loop stopped: no timer entry can name the runner or its clients any more.
  runner_.reset();
}

void RedisSync::configure(std::optional<SyncSettings> settings) {
  loop_.post([this, settings = std::move(settings)]() mutable {
    runner_->configure(std::move(settings));
  });
}

}  // namespace portico::ratelimit
