#include "filters/rate_limit/rate_limit.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "auth/authenticator.hpp"
#include "core/clock.hpp"
#include "net/event_loop.hpp"
#include "ratelimit/local_store.hpp"
#include "ratelimit/sync_store.hpp"

namespace portico::filters {
namespace {

// A token's claims as the limiter reads them.
class JwtClaims final : public ratelimit::ClaimSource {
 public:
  explicit JwtClaims(const auth::jwt::Json& claims) : claims_(claims) {}
  std::string claim(const std::string& name) const override {
    return auth::claimHeaderValue(claims_, name);
  }

 private:
  const auth::jwt::Json& claims_;
};

void appendNumber(std::string& out, int64_t v) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, end);
}

bool isQuota(const ratelimit::Touch& t) {
  return t.limit->kind == ratelimit::CompiledLimit::Kind::Quota;
}

}  // namespace

Filter& RateLimitFactory::create(Arena& arena) const { return arena.make<RateLimitFilter>(*this); }

FilterStatus RateLimitFilter::onRequestHeaders(FilterCallbacks& stream,
                                               const RequestInfo& request) {
  stream_ = &stream;
  env_ = stream.environment();
  if (env_ == nullptr) {
    stream.reply({http::ErrorCode::Internal, "limits are not available here"});
    return Replied;
  }
  if (route_.concurrency_limit > 0 && takeSlot(stream, *env_) == Replied) return Replied;
  const ratelimit::Limiter& limiter = *route_.limiter;
  if (!limiter.hasLimits(route_.route_index)) return Continue;
  scratch_ = &env_->limitScratch();
  std::string ip_scratch;
  ratelimit::RequestFacts facts;
  facts.client_ip = env_->limitClientKey(ip_scratch);
  facts.headers = request.headers;
  std::optional<JwtClaims> claims;
  if (env_->authenticated()) {
    const auth::Identity& identity = env_->identity();
    facts.consumer = identity.consumer;
    if (identity.claims) facts.claims = &claims.emplace(*identity.claims);
  }
  const int64_t now = unixNs();
  limiter.collect(route_.route_index, facts, now, scratch_->touches, touch_count_);
  ratelimit::LocalStore& store = env_->localStore();
  bool any_redis = false;
  for (size_t i = 0; i < touch_count_; ++i) {
    ratelimit::Touch& t = scratch_->touches[i];
    if (t.limit->redis) {
      any_redis = true;
      continue;
    }
    if (t.limit->sync_ns > 0) {
      t.decision = env_->syncStore().take(t.key, t.limit->params, t.limit->sync_ns, now);
    } else {
      t.decision = store.take(t.key, t.limit->params, now, isQuota(t) ? &t.period : nullptr);
    }
    t.decided = true;
    if (!t.decision.allowed) {
      giveBackLocal(i);
      return refuse(t);
    }
  }
  if (any_redis) {
    redis_retried_ = false;
    return sendToRedis();
  }
  return finishLimits();
}

FilterStatus RateLimitFilter::takeSlot(FilterCallbacks& stream, StreamEnvironment& env) {
  std::atomic<int64_t>& counter = env.concurrencyCounter(route_.route_index, route_.route_name);
  if (counter.fetch_add(1, std::memory_order_relaxed) >= route_.concurrency_limit) {
    counter.fetch_sub(1, std::memory_order_relaxed);
    const std::string message =
        "concurrency limit of " + std::to_string(route_.concurrency_limit) + " reached";
    stream.reply({http::ErrorCode::Unavailable, message});
    return Replied;
  }
  in_flight_ = &counter;
  return Continue;
}

void RateLimitFilter::releaseSlot() {
  if (in_flight_ != nullptr) in_flight_->fetch_sub(1, std::memory_order_relaxed);
  in_flight_ = nullptr;
}

void RateLimitFilter::giveBackLocal(size_t before) {
  ratelimit::LocalStore& store = env_->localStore();
  for (size_t i = 0; i < before; ++i) {
    ratelimit::Touch& t = scratch_->touches[i];
    if (t.limit->redis || !t.decided || !t.decision.allowed) continue;
    if (t.limit->sync_ns > 0) {
      env_->syncStore().giveBack(t.key);
    } else {
      store.giveBack(t.key, t.limit->params);
    }
    ratelimit::reportGivenBack(t.decision, t.limit->params);
  }
}

FilterStatus RateLimitFilter::sendToRedis() {
  ratelimit::LimitScratch& s = *scratch_;
  const std::string& prefix = route_.redis->key_prefix;
  // Keys first, then five arguments per key; the strings keep their capacity across requests
  // and the arguments are the limits' own, formatted at load, but for a quota's period end.
  // The strings are all written before any view of them is taken (a vector may move them).
  redis_count_ = 0;
  size_t quotas = 0;
  for (size_t i = 0; i < touch_count_; ++i) {
    const ratelimit::Touch& t = s.touches[i];
    if (!t.limit->redis) continue;
    if (redis_count_ == s.redis_keys.size()) s.redis_keys.emplace_back();
    s.redis_keys[redis_count_++].assign(prefix).append(t.key);
    if (!isQuota(t)) continue;
    if (quotas == s.redis_period_ends.size()) s.redis_period_ends.emplace_back();
    std::string& end = s.redis_period_ends[quotas++];
    end.clear();
    appendNumber(end, t.period.end_ns / 1000);
  }
  s.redis_views.assign(s.redis_keys.begin(),
                       s.redis_keys.begin() + static_cast<ptrdiff_t>(redis_count_));
  quotas = 0;
  for (size_t i = 0; i < touch_count_; ++i) {
    const ratelimit::Touch& t = s.touches[i];
    if (!t.limit->redis) continue;
    const auto& args = t.limit->redis_args;
    s.redis_views.insert(s.redis_views.end(), args.begin(), args.end() - 1);
    s.redis_views.push_back(isQuota(t) ? std::string_view(s.redis_period_ends[quotas++])
                                       : std::string_view(args.back()));
  }
  std::span<const std::string_view> all(s.redis_views);
  if (!env_->callRedis(all.first(redis_count_), all.subspan(redis_count_), *this)) {
    return redisFailed();
  }
  return StopIteration;
}

void RateLimitFilter::onRedisReply(uint32_t, const redisReply* reply) {
  if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && !redis_retried_ &&
      std::string_view(reply->str, reply->len).starts_with("NOSCRIPT")) {
    redis_retried_ = true;
    settle(sendToRedis());
    return;
  }
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements != 1 + 5 * redis_count_) {
    settle(redisFailed());
    return;
  }
  auto number = [reply](size_t i) -> int64_t {
    const redisReply* e = reply->element[i];
    return e->type == REDIS_REPLY_INTEGER ? static_cast<int64_t>(e->integer) : 0;
  };
  const bool all = number(0) == 1;
  size_t r = 0;
  ratelimit::Touch* refused = nullptr;
  for (size_t i = 0; i < touch_count_; ++i) {
    ratelimit::Touch& t = scratch_->touches[i];
    if (!t.limit->redis) continue;
    const size_t base = 1 + 5 * r++;
    t.decided = true;
    t.decision.allowed = number(base) == 1;
    t.decision.remaining = static_cast<uint64_t>(std::max<int64_t>(0, number(base + 1)));
    t.decision.reset_ns = number(base + 2) * 1000;
    t.decision.retry_after_ns = number(base + 3) * 1000;
    t.decision.delay_ns = number(base + 4) * 1000;
    if (!t.decision.allowed && refused == nullptr) refused = &t;
  }
  if (all) {
    settle(finishLimits());
    return;
  }
  giveBackLocal(touch_count_);
  if (refused != nullptr) {
    refuse(*refused);
  } else {
    stream_->reply({http::ErrorCode::Unavailable, "rate limit store unavailable", 0, {}, true});
  }
}

FilterStatus RateLimitFilter::redisFailed() {
  if (route_.redis->on_error_allow) return finishLimits();  // the Redis limits stay undecided
  giveBackLocal(touch_count_);
  stream_->reply({http::ErrorCode::Unavailable, "rate limit store unavailable"});
  return Replied;
}

FilterStatus RateLimitFilter::refuse(const ratelimit::Touch& refused) {
  retry_after_s_ = ratelimit::ceilSeconds(refused.decision.retry_after_ns, 1);
  env_->countRateLimited(refused.limit->key_label);
  stream_->reply({isQuota(refused) ? http::ErrorCode::QuotaExceeded : http::ErrorCode::RateLimited,
                  refused.limit->message});
  return Replied;
}

FilterStatus RateLimitFilter::finishLimits() {
  int64_t delay_ns = 0;
  for (size_t i = 0; i < touch_count_; ++i) {
    const ratelimit::Touch& t = scratch_->touches[i];
    if (t.decided) delay_ns = std::max(delay_ns, t.decision.delay_ns);
  }
  if (delay_ns <= 0) return Continue;
  env_->resumeAt(env_->loop().nowMs() + static_cast<uint64_t>((delay_ns + 999'999) / 1'000'000));
  return StopIteration;
}

void RateLimitFilter::settle(FilterStatus status) {
  if (status == Continue) stream_->resume();
  // Replied: the answer went out; StopIteration: waiting again (Redis, or a delay).
}

FilterStatus RateLimitFilter::onResponseHeaders(FilterCallbacks&, ResponseInfo& response) {
  if (retry_after_s_ >= 0) {
    response.added_fields.append("Retry-After: ");
    appendNumber(response.added_fields, retry_after_s_);
    response.added_fields.append("\r\n");
  }
  if (touch_count_ > 0) appendLimitFields(response.added_fields);
  return Continue;
}

void RateLimitFilter::appendLimitFields(std::string& out) const {
  const auto& touches = scratch_->touches;
  bool first = true;
  for (size_t i = 0; i < touch_count_; ++i) {
    if (!touches[i].decided) continue;
    out.append(first ? "RateLimit-Policy: " : ", ");
    out.append(touches[i].limit->policy);
    first = false;
  }
  if (first) return;
  out.append("\r\nRateLimit: ");
  first = true;
  for (size_t i = 0; i < touch_count_; ++i) {
    const ratelimit::Touch& t = touches[i];
    if (!t.decided) continue;
    if (!first) out.append(", ");
    first = false;
    out.append(t.limit->name);
    out.append(";r=");
    appendNumber(out, static_cast<int64_t>(t.decision.remaining));
    out.append(";t=");
    appendNumber(out, ratelimit::ceilSeconds(t.decision.reset_ns));
  }
  out.append("\r\n");
}

}  // namespace portico::filters
