#pragma once
// A route's `concurrency_limit` and `rate_limit` entries (with the consumers' plans and quotas):
// the concurrency slot first (it costs no counter), then every rate limit, local and batched
// counters decided at once, Redis ones in one script call while the request waits
// (StopIteration), and in mode delay the wait itself. The response, whoever makes it, gets the
// RateLimit-Policy and RateLimit fields of the limits decided, and a refusal Retry-After.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "config/model.hpp"
#include "filters/filter.hpp"
#include "ratelimit/limiter.hpp"
#include "ratelimit/redis_client.hpp"

namespace portico::filters {

class RateLimitFactory final : public FilterFactory {
 public:
  struct Settings {
    uint32_t route_index = 0;  // in the snapshot: the limiter's and the counters' index
    std::string route_name;
    uint32_t concurrency_limit = 0;
    const ratelimit::Limiter* limiter = nullptr;
    const config::Redis* redis = nullptr;  // null without a redis section
  };
  explicit RateLimitFactory(Settings settings) : s_(std::move(settings)) {}
  Filter& create(Arena& arena) const override;
  const Settings& settings() const { return s_; }

 private:
  Settings s_;
};

class RateLimitFilter final : public Filter, public ratelimit::RedisWaiter {
 public:
  explicit RateLimitFilter(const RateLimitFactory& route) : route_(route.settings()) {}
  FilterStatus onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) override;
  FilterStatus onResponseHeaders(FilterCallbacks& stream, ResponseInfo& response) override;
  void onComplete(const StreamOutcome&) override { releaseSlot(); }
  ~RateLimitFilter() override { releaseSlot(); }
  // The Redis script's answer (null: Redis could not answer); only while the request waits.
  void onRedisReply(uint32_t tag, const redisReply* reply) override;

 private:
  FilterStatus takeSlot(FilterCallbacks& stream, StreamEnvironment& env);
  FilterStatus sendToRedis();
  FilterStatus redisFailed();
  FilterStatus refuse(const ratelimit::Touch& refused);
  // Every limit admitted the request: Continue, or wait out the longest delay first.
  FilterStatus finishLimits();
  // A later limit refused: the earlier local ones take their request back.
  void giveBackLocal(size_t before);
  // After a pause: the outcome of the rest, told to the stream.
  void settle(FilterStatus status);
  void releaseSlot();
  void appendLimitFields(std::string& out) const;

  const RateLimitFactory::Settings& route_;
  FilterCallbacks* stream_ = nullptr;
  StreamEnvironment* env_ = nullptr;
  ratelimit::LimitScratch* scratch_ = nullptr;
  std::atomic<int64_t>* in_flight_ = nullptr;  // the concurrency slot held, given back at the end
  size_t touch_count_ = 0;  // limits collected: the first touch_count_ of scratch_->touches
  size_t redis_count_ = 0;
  bool redis_retried_ = false;  // sent again once after NOSCRIPT
  int64_t retry_after_s_ = -1;  // set when a limit refused the request
};

}  // namespace portico::filters
