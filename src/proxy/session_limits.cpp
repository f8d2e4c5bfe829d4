// The limits step of a session, after auth and before the upstream: the route's concurrency
// limit, then its rate limits and quotas — local and batched counters decided at once, Redis
// ones in one script call whose answer comes back through onRedisReply — and, in mode delay,
// the wait.
#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "auth/authenticator.hpp"
#include "core/clock.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "ratelimit/limiter.hpp"
#include "ratelimit/local_store.hpp"
#include "ratelimit/redis_client.hpp"
#include "ratelimit/sync_store.hpp"

namespace portico::proxy {
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

// An X-Forwarded-For entry, which some proxies write with a port: "192.0.2.1:4711" or
// "[2001:db8::1]:4711" (review L12).
bool parseForwardedFor(std::string_view item, net::SocketAddress& out) {
  if (net::parseNumericAddress(item, 0, out)) return true;
  if (item.starts_with('[')) {
    size_t close = item.find(']');
    if (close == std::string_view::npos ||
        (close + 1 != item.size() && item[close + 1] != ':')) {
      return false;
    }
    return net::parseNumericAddress(item.substr(1, close - 1), 0, out);
  }
  size_t colon = item.find(':');
  return colon != std::string_view::npos && colon == item.rfind(':') &&
         net::parseNumericAddress(item.substr(0, colon), 0, out);
}

// The key of `address` for `key: ip` limits. An IPv6 client holds a whole prefix (a /64 at
// least), so counting per /128 would give it 2^64 buckets (review M6): it counts per prefix.
std::string_view ipKey(const net::SocketAddress& address, unsigned ipv6_prefix,
                       std::string& scratch) {
  auto bytes = address.asV6Bytes();
  const bool v4_mapped =
      std::all_of(bytes.begin(), bytes.begin() + 10, [](uint8_t b) { return b == 0; }) &&
      bytes[10] == 0xff && bytes[11] == 0xff;
  char text[INET6_ADDRSTRLEN + 8];
  if (address.family() != AF_INET6 || v4_mapped || ipv6_prefix >= 128) {
    scratch.assign(text, address.formatHost(text, sizeof text));
    return scratch;
  }
  for (unsigned bit = ipv6_prefix; bit < 128; ++bit) {
    bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  scratch.assign(text).append("/");
  appendNumber(scratch, ipv6_prefix);
  return scratch;
}

}  // namespace

std::string_view Session::clientAddressForLimits(std::string& scratch) const {
  const config::Listener& listen = listener();
  const auto& trusted = listen.trusted_proxies;
  if ((trusted.empty() || !inCidrs(trusted, peer_)) && peer_.family() != AF_INET6) {
    return std::string_view(peer_text_, peer_len_);
  }
  return ipKey(clientAddress(), listen.limit_ipv6_prefix, scratch);
}

net::SocketAddress Session::clientAddress() const {
  const auto& trusted = listener().trusted_proxies;
  if (trusted.empty() || !inCidrs(trusted, peer_)) return peer_;
  // Behind trusted proxies: the rightmost X-Forwarded-For address that is not one of them.
  net::SocketAddress found;
  bool any = false;
  for (const auto& h : rq_->head.headers) {
    if (h.name.size() != 15 || !http::equalsIgnoreCase(h.name, "x-forwarded-for")) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      net::SocketAddress address;
      if (!parseForwardedFor(item, address)) {
        any = false;  // garbage from here on: trust nothing left of it
        continue;
      }
      if (!inCidrs(trusted, address)) {
        found = address;
        any = true;
      }
    }
  }
  return any ? found : peer_;
}

// Concurrency first (it costs no counter), then the rate limits; admit() when all of them let
// the request through now, else a reply or a wait (Redis, or a delay).
void Session::checkLimits(const RouteRuntime& route, const router::MatchResult& match) {
  const size_t route_index = static_cast<size_t>(&route - rq_->snap->shared->routes.data());
  if (route.config->concurrency_limit > 0) {
    std::atomic<int64_t>*& counter = rq_->snap->concurrency[route_index];
    if (counter == nullptr) counter = worker_.localStore()->concurrencyCounter(route.config->name);
    if (counter->fetch_add(1, std::memory_order_relaxed) >= route.config->concurrency_limit) {
      counter->fetch_sub(1, std::memory_order_relaxed);
      replyError(http::ErrorCode::Unavailable,
                 "concurrency limit of " + std::to_string(route.config->concurrency_limit) +
                     " reached",
                 rq_->head.framing != http::BodyFraming::None);
      return;
    }
    rq_->in_flight.hold(counter);
  }
  const ratelimit::Limiter& limiter = *rq_->snap->shared->limiter;
  rq_->touch_count = 0;
  if (!limiter.hasLimits(static_cast<uint32_t>(route_index))) {
    admit(route, match);
    return;
  }
  std::string ip_scratch;
  ratelimit::RequestFacts facts;
  facts.client_ip = clientAddressForLimits(ip_scratch);
  facts.headers = rq_->head.headers;
  std::optional<JwtClaims> claims;
  if (rq_->authenticated && rq_->identity) {
    facts.consumer = rq_->identity->consumer;
    if (rq_->identity->claims) facts.claims = &claims.emplace(*rq_->identity->claims);
  }
  const int64_t now = unixNs();
  limiter.collect(static_cast<uint32_t>(route_index), facts, now, rq_->touches, rq_->touch_count);
  ratelimit::LocalStore& store = *worker_.localStore();
  bool any_redis = false;
  for (size_t i = 0; i < rq_->touch_count; ++i) {
    ratelimit::Touch& t = rq_->touches[i];
    if (t.limit->redis) {
      any_redis = true;
      continue;
    }
    if (t.limit->sync_ns > 0) {
      t.decision = worker_.syncStore()->take(t.key, t.limit->params, t.limit->sync_ns, now);
    } else {
      t.decision = store.take(t.key, t.limit->params, now, isQuota(t) ? &t.period : nullptr);
    }
    t.decided = true;
    if (!t.decision.allowed) {
      giveBackLocal(i);
      replyLimited(t);
      return;
    }
  }
  rq_->pending_match = match;
  if (any_redis) {
    rq_->redis_retried = false;
    sendToRedis();
    return;
  }
  finishLimits();
}

// A later limit refused: the earlier local ones take their request back, and report what they
// have as it stands.
void Session::giveBackLocal(size_t before) {
  ratelimit::LocalStore& store = *worker_.localStore();
  for (size_t i = 0; i < before; ++i) {
    ratelimit::Touch& t = rq_->touches[i];
    if (t.limit->redis || !t.decided || !t.decision.allowed) continue;
    if (t.limit->sync_ns > 0) {
      worker_.syncStore()->giveBack(t.key);
    } else {
      store.giveBack(t.key, t.limit->params);
    }
    ratelimit::reportGivenBack(t.decision, t.limit->params);
  }
}

void Session::sendToRedis() {
  ratelimit::RedisClient* redis = worker_.redis();
  const std::string& prefix = rq_->snap->shared->config.redis->key_prefix;
  // Keys first, then five arguments per key; the strings keep their capacity across requests
  // and the arguments are the limits' own, formatted at load, but for a quota's period end.
  // The strings are all written before any view of them is taken (a vector may move them).
  rq_->redis_count = 0;
  size_t quotas = 0;
  for (size_t i = 0; i < rq_->touch_count; ++i) {
    const ratelimit::Touch& t = rq_->touches[i];
    if (!t.limit->redis) continue;
    if (rq_->redis_count == rq_->scratch.redis_keys.size()) rq_->scratch.redis_keys.emplace_back();
    rq_->scratch.redis_keys[rq_->redis_count++].assign(prefix).append(t.key);
    if (!isQuota(t)) continue;
    if (quotas == rq_->scratch.redis_period_ends.size())
      rq_->scratch.redis_period_ends.emplace_back();
    std::string& end = rq_->scratch.redis_period_ends[quotas++];
    end.clear();
    appendNumber(end, t.period.end_ns / 1000);
  }
  rq_->scratch.redis_views.assign(
      rq_->scratch.redis_keys.begin(),
      rq_->scratch.redis_keys.begin() + static_cast<ptrdiff_t>(rq_->redis_count));
  quotas = 0;
  for (size_t i = 0; i < rq_->touch_count; ++i) {
    const ratelimit::Touch& t = rq_->touches[i];
    if (!t.limit->redis) continue;
    const auto& args = t.limit->redis_args;
    rq_->scratch.redis_views.insert(rq_->scratch.redis_views.end(), args.begin(), args.end() - 1);
    rq_->scratch.redis_views.push_back(
        isQuota(t) ? std::string_view(rq_->scratch.redis_period_ends[quotas++])
                   : std::string_view(args.back()));
  }
  std::span<const std::string_view> all(rq_->scratch.redis_views);
  state_ = State::LimitWait;
  rq_->delay_until_ms = 0;
  const uint32_t tag = ++limit_generation_;
  if (redis == nullptr ||
      !redis->evalScript(all.first(rq_->redis_count), all.subspan(rq_->redis_count), this, tag)) {
    redisFailed();
  }
}

void Session::onRedisReply(uint32_t tag, const redisReply* reply) {
  if (tag != limit_generation_ || state_ != State::LimitWait || rq_->delay_until_ms != 0) return;
  if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && !rq_->redis_retried &&
      std::string_view(reply->str, reply->len).starts_with("NOSCRIPT")) {
    rq_->redis_retried = true;
    sendToRedis();
    return;
  }
  state_ = State::ReadHead;  // until admit() or a reply moves it on
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements != 1 + 5 * rq_->redis_count) {
    redisFailed();
    drive();
    return;
  }
  auto number = [reply](size_t i) -> int64_t {
    const redisReply* e = reply->element[i];
    return e->type == REDIS_REPLY_INTEGER ? static_cast<int64_t>(e->integer) : 0;
  };
  const bool all = number(0) == 1;
  size_t r = 0;
  ratelimit::Touch* refused = nullptr;
  for (size_t i = 0; i < rq_->touch_count; ++i) {
    ratelimit::Touch& t = rq_->touches[i];
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
  if (!all) {
    giveBackLocal(rq_->touch_count);
    if (refused != nullptr) {
      replyLimited(*refused);
    } else {
      replyError(http::ErrorCode::Unavailable, "rate limit store unavailable", true);
    }
  } else {
    finishLimits();
  }
  drive();
}

void Session::redisFailed() {
  state_ = State::ReadHead;
  if (rq_->snap->shared->config.redis->on_error_allow) {
    finishLimits();  // the Redis limits stay undecided: no headers for them
    return;
  }
  giveBackLocal(rq_->touch_count);
  replyError(http::ErrorCode::Unavailable, "rate limit store unavailable",
             rq_->head.framing != http::BodyFraming::None);
}

// Every limit admitted the request: wait out the longest delay, if any, then go on.
void Session::finishLimits() {
  int64_t delay_ns = 0;
  for (size_t i = 0; i < rq_->touch_count; ++i) {
    if (rq_->touches[i].decided) delay_ns = std::max(delay_ns, rq_->touches[i].decision.delay_ns);
  }
  if (delay_ns <= 0) {
    admit(*rq_->route, *rq_->pending_match);
    return;
  }
  state_ = State::LimitWait;
  rq_->delay_until_ms =
      worker_.loop().nowMs() + static_cast<uint64_t>((delay_ns + 999'999) / 1'000'000);
}

void Session::endLimitWait() {
  rq_->delay_until_ms = 0;
  state_ = State::ReadHead;
  admit(*rq_->route, *rq_->pending_match);
  drive();
}

void Session::replyLimited(const ratelimit::Touch& refused) {
  const bool quota = isQuota(refused);
  rq_->extra_headers.assign("Retry-After: ");
  appendNumber(rq_->extra_headers, ratelimit::ceilSeconds(refused.decision.retry_after_ns, 1));
  rq_->extra_headers.append("\r\n");
  appendLimitHeaders(rq_->extra_headers);
  replyError(quota ? http::ErrorCode::QuotaExceeded : http::ErrorCode::RateLimited,
             refused.limit->message, rq_->head.framing != http::BodyFraming::None);
}

void Session::appendLimitHeaders(std::string& out) const {
  bool first = true;
  for (size_t i = 0; i < rq_->touch_count; ++i) {
    if (!rq_->touches[i].decided) continue;
    out.append(first ? "RateLimit-Policy: " : ", ");
    out.append(rq_->touches[i].limit->policy);
    first = false;
  }
  if (first) return;
  out.append("\r\nRateLimit: ");
  first = true;
  for (size_t i = 0; i < rq_->touch_count; ++i) {
    const ratelimit::Touch& t = rq_->touches[i];
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

}  // namespace portico::proxy
