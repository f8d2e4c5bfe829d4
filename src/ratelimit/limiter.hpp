#pragma once
// The rate limits of one config snapshot, compiled once: for each route, what it counts, under
// which key, with which parameters, and the header text it answers with. Per request, collect()
// lists the counters the request touches (resolving `limit: plan` through the consumer's plan
// and adding the plan's quota); the session then asks the stores and answers.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "http/header.hpp"
#include "ratelimit/algorithms.hpp"

namespace portico::ratelimit {

// One limit as compiled: a route's entry, a plan's rate limit, or a plan's quota.
struct CompiledLimit {
  enum class Kind : uint8_t { Rate, Quota };
  Kind kind = Kind::Rate;
  // A route's `limit: plan` entry: stands for the consumer's plan and counts nothing itself.
  bool from_plan = false;
  std::vector<config::RateLimitKeyPart> key;
  Params params;
  bool redis = false;        // decided in Redis, one round trip per request
  int64_t sync_ns = 0;       // > 0: batched (sync_store.hpp), decided here against a lease
  bool calendar_month = false;  // Quota: `period: month`
  // Names the counters: the limit's identity, so an unchanged limit keeps its counters across
  // reloads and a changed one starts afresh.
  std::string id;
  std::string policy;   // the RateLimit-Policy item: "name";q=20;w=1
  std::string name;     // quoted policy name, for the RateLimit item
  std::string message;  // "rate limit of 20 per 1s exceeded"
  std::string key_label;  // the key as configured ("ip", "header:x-tenant"), for the metrics
  // Redis: the script's five arguments (redis_script.hpp); a quota's fifth, the end of its
  // period, is per request.
  std::array<std::string, 5> redis_args;
};

// The authenticated request's claims, read by `claim:NAME` key parts. An interface, so that the
// limiter does not depend on how the auth providers parse tokens.
class ClaimSource {
 public:
  // The claim's value as it would be forwarded in a header; empty when it is absent.
  virtual std::string claim(const std::string& name) const = 0;

 protected:
  ~ClaimSource() = default;
};

// What a request offers to the keys.
struct RequestFacts {
  std::string_view client_ip;
  const config::Consumer* consumer = nullptr;
  http::HeaderList headers;
  const ClaimSource* claims = nullptr;  // null without a token
};

// One counter a request touches, and what its store decided.
struct Touch {
  const CompiledLimit* limit = nullptr;
  std::string key;            // the counter's name in its store (without the Redis prefix)
  ratelimit::Window period;    // Quota: the period holding now (unix ns)
  Decision decision;
  bool decided = false;       // false: the store could not answer (Redis error)
};

// What a request's limits fill and the next request's overwrite from the start, kept for their
// capacity so that a request allocates nothing for them: the counters touched, and the Redis
// script call's keys (prefixed), quota period ends, and views of both with the limits' own
// arguments.
struct LimitScratch {
  std::vector<Touch> touches;
  std::vector<std::string> redis_keys;
  std::vector<std::string> redis_period_ends;
  std::vector<std::string_view> redis_views;
};

class Limiter {
 public:
  explicit Limiter(const config::Config& config);
  ~Limiter();

  bool hasLimits(uint32_t route) const { return !routes_[route].limits.empty(); }
  // Whether some limit asks Redis per request (the workers then connect to it).
  bool asksRedis() const { return asks_redis_; }
  // The shortest `sync` of the batched limits, 0 without any.
  int64_t shortestSyncNs() const { return shortest_sync_ns_; }
  // Fills `touches` (reusing its strings) with the counters of `route` this request touches,
  // in the route's order, the quota right after its plan's rate limit.
  void collect(uint32_t route, const RequestFacts& facts, int64_t now_ns,
               std::vector<Touch>& touches, size_t& count) const;

 private:
  struct RouteLimits {
    std::vector<CompiledLimit> limits;
  };
  struct PlanLimits {
    std::unique_ptr<CompiledLimit> rate;
    std::unique_ptr<CompiledLimit> quota;
  };
  const PlanLimits* planOf(const config::Consumer* consumer) const;
  void fillKey(const CompiledLimit& limit, const RequestFacts& facts, std::string& out) const;

  const config::Config& config_;
  std::vector<RouteLimits> routes_;
  std::vector<PlanLimits> plans_;           // in config.plans order
  std::vector<int32_t> consumer_plan_;      // [consumer index] -> plans_ index or -1
  int32_t default_plan_ = -1;
  bool asks_redis_ = false;
  int64_t shortest_sync_ns_ = 0;
};

// The period of a quota holding `now_ns` (unix ns).
Window quotaPeriod(const CompiledLimit& quota, int64_t now_ns);

}  // namespace portico::ratelimit
