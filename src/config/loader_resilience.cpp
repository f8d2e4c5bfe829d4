// What keeps a failing upstream from taking the API down with it: health_check, outlier,
// circuit_breaker and retry (docs/resilience.md).
#include <charconv>

#include "config/loader_context.hpp"
#include "config/values.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kHealthCheckKeys[] = {"path",      "interval", "timeout", "healthy",
                                                 "unhealthy", "statuses", "host"};
constexpr std::string_view kOutlierKeys[] = {"consecutive_failures", "eject_for"};
constexpr std::string_view kBreakerKeys[] = {"failure_rate", "window", "min_requests", "open_for",
                                             "half_open_requests"};
constexpr std::string_view kRetryKeys[] = {
    "attempts", "on", "backoff", "budget", "retry_non_idempotent", "replay_buffer"};
constexpr std::string_view kBackoffKeys[] = {"base", "max"};
const KeySet kHealthCheck{kHealthCheckKeys, {}};
const KeySet kOutlier{kOutlierKeys, {}};
const KeySet kBreaker{kBreakerKeys, {}};
const KeySet kRetry{kRetryKeys, {}};
const KeySet kBackoff{kBackoffKeys, {}};

constexpr Duration kMinInterval{10};

template <typename T>
void readCount(Context& ctx, const MapFields& map, std::string_view key, int64_t min, int64_t max,
               T& out) {
  if (const Field* f = map.find(key)) {
    if (auto n = ctx.integer(f->item(), min, max)) out = static_cast<T>(*n);
  }
}

void readDuration(Context& ctx, const MapFields& map, std::string_view key, Duration& out) {
  if (const Field* f = map.find(key)) out = ctx.duration(f->item(), true).value_or(out);
}

bool isTarget(std::string_view path) {
  if (!path.starts_with('/')) return false;
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

void parseHealthCheck(Context& ctx, const Item& item, HealthCheck& check) {
  MapFields map = ctx.readMap(item, "health_check", &kHealthCheck);
  if (const Field* f = map.find("path")) {
    if (auto path = ctx.text(f->item())) {
      if (isTarget(*path)) {
        check.path = *path;
      } else {
        ctx.error(ctx.pos(f->item()), "invalid value " + quote(*path) +
                                          " for \"path\" (a path starting with '/', no spaces)");
      }
    }
  }
  readDuration(ctx, map, "interval", check.interval);
  readDuration(ctx, map, "timeout", check.timeout);
  readCount(ctx, map, "healthy", 1, 100, check.healthy);
  readCount(ctx, map, "unhealthy", 1, 100, check.unhealthy);
  if (check.interval < kMinInterval) {
    ctx.error(map.find("interval")->key_pos,
              "\"interval\" of a health check must be at least 10ms");
  }
  if (check.timeout > check.interval) {
    const Field* f = map.find("timeout") != nullptr ? map.find("timeout") : map.find("interval");
    ctx.error(f->key_pos, "the health check's \"timeout\" must not exceed its \"interval\"");
  }
  if (const Field* f = map.find("statuses")) {
    for (const Item& entry : ctx.readList(f->item(), true)) {
      if (auto status = ctx.integer(entry, 100, 599)) {
        check.statuses.push_back(static_cast<uint16_t>(*status));
      }
    }
  }
  if (const Field* f = map.find("host")) {
    if (auto host = ctx.text(f->item())) {
      if (!host->empty() && isTarget("/" + *host)) {
        check.host = *host;
      } else {
        ctx.error(ctx.pos(f->item()), "invalid value " + quote(*host) + " for \"host\"");
      }
    }
  }
}

void parseOutlier(Context& ctx, const Item& item, OutlierDetection& outlier) {
  MapFields map = ctx.readMap(item, "outlier", &kOutlier);
  readCount(ctx, map, "consecutive_failures", 1, 1000, outlier.consecutive_failures);
  readDuration(ctx, map, "eject_for", outlier.eject_for);
}

void parseBreaker(Context& ctx, const Item& item, CircuitBreaker& breaker) {
  MapFields map = ctx.readMap(item, "circuit_breaker", &kBreaker);
  if (const Field* f = map.find("failure_rate")) {
    if (auto rate = ctx.number(f->item(), 0.0, 1.0)) {
      if (*rate > 0.0) {
        breaker.failure_rate = *rate;
      } else {
        ctx.error(ctx.pos(f->item()),
                  "\"failure_rate\" must be above 0 (0 would open the "
                  "circuit on any request)");
      }
    }
  }
  readDuration(ctx, map, "window", breaker.window);
  readCount(ctx, map, "min_requests", 1, 1'000'000, breaker.min_requests);
  readDuration(ctx, map, "open_for", breaker.open_for);
  readCount(ctx, map, "half_open_requests", 1, 1000, breaker.half_open_requests);
}

// connect_failure | reset | timeout | a status: 429 or 500..599.
void parseRetryOn(Context& ctx, const Item& item, RetryPolicy& retry) {
  retry.on_connect_failure = retry.on_reset = retry.on_timeout = false;
  retry.statuses.clear();
  for (const Item& entry : ctx.readList(item, true)) {
    auto text = ctx.text(entry);
    if (!text) continue;
    int status = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), status);
    if (*text == "connect_failure") {
      retry.on_connect_failure = true;
    } else if (*text == "reset") {
      retry.on_reset = true;
    } else if (*text == "timeout") {
      retry.on_timeout = true;
    } else if (ec == std::errc() && end == text->data() + text->size() &&
               (status == 429 || (status >= 500 && status <= 599))) {
      if (!retry.retriesStatus(status)) retry.statuses.push_back(static_cast<uint16_t>(status));
    } else {
      ctx.error(ctx.pos(entry), "invalid value " + quote(*text) +
                                    " in \"on\" (use connect_failure, reset, timeout, 429 or a "
                                    "status from 500 to 599)");
    }
  }
}

void parseRetry(Context& ctx, const Item& item, RetryPolicy& retry) {
  MapFields map = ctx.readMap(item, "retry", &kRetry);
  readCount(ctx, map, "attempts", 1, 10, retry.attempts);
  if (const Field* f = map.find("on")) parseRetryOn(ctx, f->item(), retry);
  if (const Field* f = map.find("backoff")) {
    MapFields backoff = ctx.readMap(f->item(), "backoff", &kBackoff);
    readDuration(ctx, backoff, "base", retry.backoff_base);
    readDuration(ctx, backoff, "max", retry.backoff_max);
    if (retry.backoff_max < retry.backoff_base) {
      const Field* at = backoff.find("max") != nullptr ? backoff.find("max") : f;
      ctx.error(at->key_pos, "backoff \"max\" must not be below \"base\"");
    }
  }
  if (const Field* f = map.find("budget")) {
    retry.budget = ctx.number(f->item(), 0.0, 1.0).value_or(retry.budget);
  }
  if (const Field* f = map.find("retry_non_idempotent")) {
    retry.non_idempotent = ctx.boolean(f->item()).value_or(false);
  }
  if (const Field* f = map.find("replay_buffer")) {
    if (auto bytes = ctx.size(f->item(), false)) {
      constexpr uint64_t kMaxReplay = 64ull << 20;
      if (*bytes <= kMaxReplay) {
        retry.replay_buffer = *bytes;
      } else {
        ctx.error(ctx.pos(f->item()), "\"replay_buffer\" must be at most 64MiB");
      }
    }
  }
}

}  // namespace

void parseResilience(Context& ctx, const MapFields& map, Upstream& up) {
  const bool builtin = up.builtin != Upstream::Builtin::None;
  struct Section {
    std::string_view key;
    void (*parse)(Context&, const Item&, Upstream&);
  };
  static constexpr Section kSections[] = {
      {"health_check", [](Context& c, const Item& i,
                          Upstream& u) { parseHealthCheck(c, i, u.health_check.emplace()); }},
      {"outlier",
       [](Context& c, const Item& i, Upstream& u) { parseOutlier(c, i, u.outlier.emplace()); }},
      {"circuit_breaker", [](Context& c, const Item& i,
                             Upstream& u) { parseBreaker(c, i, u.circuit_breaker.emplace()); }},
      {"retry",
       [](Context& c, const Item& i, Upstream& u) { parseRetry(c, i, u.retry.emplace()); }},
  };
  for (const Section& section : kSections) {
    const Field* f = map.find(section.key);
    if (f == nullptr) continue;
    if (builtin) {
      ctx.error(f->key_pos, quote(section.key) + " cannot be used with \"builtin\"");
      continue;
    }
    section.parse(ctx, f->item(), up);
  }
}

}  // namespace portico::config::detail
