// The `plans` section and a route's `rate_limit` (docs/rate-limiting.md), as the loader hands
// them to the rate_limit filter. Combinations that would be silently meaningless — a burst on a window
// algorithm, a delay on a fixed window, a consumer key on a public route — are refused here.

#include <algorithm>
#include <string>
#include <unordered_set>

#include "filters/rate_limit/config.hpp"

#include "config/loader_context.hpp"
#include "config/values.hpp"

namespace portico::filters {

using namespace portico::config;
using namespace portico::config::detail;

namespace {

constexpr std::string_view kPlanKeys[] = {"rate_limit", "quota"};
constexpr std::string_view kPlanLimitKeys[] = {"limit", "window", "burst", "algorithm", "store"};
constexpr std::string_view kQuotaKeys[] = {"limit", "period"};
constexpr std::string_view kLimitKeys[] = {"name",      "key",       "limit", "window",
                                           "burst",     "algorithm", "mode",  "max_delay",
                                           "store",     "sync"};
const KeySet kPlan{kPlanKeys, {}};
const KeySet kPlanLimit{kPlanLimitKeys, {}};
const KeySet kQuota{kQuotaKeys, {}};
const KeySet kLimit{kLimitKeys, {}};

constexpr std::string_view kAlgorithms[] = {"gcra", "sliding_window", "fixed_window"};
constexpr std::string_view kModes[] = {"reject", "delay"};
constexpr std::string_view kStores[] = {"local", "redis"};

constexpr int64_t kMaxLimit = 1'000'000'000;
constexpr Duration kMaxWindow{366LL * 86'400'000};
constexpr Duration kMinSync{10};
constexpr Duration kMaxSync{10'000};

bool isPolicyName(std::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                  c == '.';
         });
}

// A default policy name part: lowercased, anything but [a-z0-9_.-] as '_'.
void appendNamePart(std::string& out, std::string_view part) {
  for (char c : part) {
    char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    bool plain = (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') ||
                 lower == '_' || lower == '-' || lower == '.';
    out.push_back(plain ? lower : '_');
  }
}

std::string_view kindName(RateLimitKeyPart::Kind kind) {
  switch (kind) {
    case RateLimitKeyPart::Kind::Ip: return "ip";
    case RateLimitKeyPart::Kind::Consumer: return "consumer";
    case RateLimitKeyPart::Kind::Route: return "route";
    case RateLimitKeyPart::Kind::Header: return "header";
    case RateLimitKeyPart::Kind::Claim: return "claim";
  }
  return "";
}

class RateLimitParser {
 public:
  RateLimitParser(Context& ctx, const Config& config) : ctx_(ctx), config_(config) {}

  // The fields a plan's rate_limit and a route's limit share.
  void parseShape(const MapFields& map, RateLimit& limit, bool limit_required) {
    if (const Field* f = map.find("limit")) {
      if (auto n = ctx_.integer(f->item(), 1, kMaxLimit)) limit.limit = static_cast<uint64_t>(*n);
    } else if (limit_required) {
      ctx_.requireKey(map, "limit", "rate_limit");
    }
    if (const Field* f = map.find("window")) {
      if (auto d = ctx_.duration(f->item(), true)) {
        if (*d > kMaxWindow) {
          ctx_.error(ctx_.pos(f->item()), "\"window\" must be at most 366d");
        } else {
          limit.window = *d;
        }
      }
    }
    if (const Field* f = map.find("burst")) {
      if (auto n = ctx_.integer(f->item(), 0, kMaxLimit)) limit.burst = static_cast<uint64_t>(*n);
    }
    if (const Field* f = map.find("algorithm")) {
      if (auto i = ctx_.choice(f->item(), kAlgorithms)) {
        limit.algorithm = static_cast<RateLimit::Algorithm>(*i);
      }
    }
    if (const Field* f = map.find("store")) {
      if (auto i = ctx_.choice(f->item(), kStores)) {
        limit.store = static_cast<RateLimit::Store>(*i);
        if (limit.store == RateLimit::Store::Redis && !config_.redis) {
          ctx_.error(ctx_.pos(f->item()),
                     "\"store: redis\" needs a top-level \"redis\" section (its address)");
        }
      }
    }
    if (limit.burst > 0 && limit.algorithm != RateLimit::Algorithm::Gcra) {
      const Field* f = map.find("burst");
      ctx_.error(ctx_.pos(f->item()),
                 "\"burst\" applies to algorithm: gcra only (a window algorithm admits \"limit\" "
                 "per window)");
    }
  }

  Plan parsePlan(const Field& field) {
    Plan plan;
    plan.name = std::string(field.key);
    if (!isPlainName(plan.name)) {
      ctx_.error(field.key_pos, "invalid plan name " + quote(plan.name) +
                                    " (use letters, digits, '_', '-' and '.')");
    }
    const std::string context = "plan " + quote(plan.name);
    MapFields map = ctx_.readMap(field.item(), context, &kPlan);
    if (!map.valid) return plan;
    if (map.fields.empty()) {
      ctx_.error(map.pos, context + " needs a rate_limit or a quota");
    }
    if (const Field* f = map.find("rate_limit")) {
      MapFields limit_map = ctx_.readMap(f->item(), context + ".rate_limit", &kPlanLimit);
      if (limit_map.valid) {
        RateLimit limit;
        limit.name = "plan";
        limit.key.push_back({RateLimitKeyPart::Kind::Consumer, {}});
        parseShape(limit_map, limit, true);
        plan.rate_limit = std::move(limit);
      }
    }
    if (const Field* f = map.find("quota")) {
      MapFields quota_map = ctx_.readMap(f->item(), context + ".quota", &kQuota);
      if (quota_map.valid) {
        Quota quota;
        ctx_.requireKey(quota_map, "limit", context + ".quota");
        ctx_.requireKey(quota_map, "period", context + ".quota");
        if (const Field* q = quota_map.find("limit")) {
          quota.limit = static_cast<uint64_t>(ctx_.integer(q->item(), 1, kMaxLimit).value_or(1));
        }
        if (const Field* q = quota_map.find("period")) {
          parsePeriod(q->item(), quota);
        }
        quota.in_redis = config_.redis.has_value();
        plan.quota = quota;
      }
    }
    return plan;
  }

  void parseRouteLimits(const Item& item, Route& route) {
    std::vector<Item> entries;
    if (ctx_.node(item.node).kind == YamlNode::Kind::Sequence) {
      entries = ctx_.readList(item, true);
    } else {
      entries.push_back(item);
    }
    std::unordered_set<std::string> names;
    for (const Item& entry : entries) {
      MapFields map = ctx_.readMap(entry, "rate_limit", &kLimit);
      if (!map.valid) continue;
      RateLimit limit = parseRouteLimit(map, route);
      if (!names.insert(limit.name).second) {
        ctx_.error(map.pos, "duplicate rate limit name " + quote(limit.name) + " on route " +
                                quote(route.name) + " (give each limit its own \"name\")");
      }
      route.rate_limits.push_back(std::move(limit));
    }
  }

 private:
  void parsePeriod(const Item& item, Quota& quota) {
    auto text = ctx_.text(item);
    if (!text) return;
    if (*text == "month") {
      quota.calendar_month = true;
      return;
    }
    if (auto d = ctx_.duration(item, true)) {
      if (*d < Duration{1'000} || *d > kMaxWindow) {
        ctx_.error(ctx_.pos(item), "\"period\" must be between 1s and 366d, or month");
      } else {
        quota.period = *d;
      }
    }
  }

  RateLimit parseRouteLimit(const MapFields& map, const Route& route) {
    RateLimit limit;
    const Field* limit_field = map.find("limit");
    if (limit_field != nullptr && ctx_.node(limit_field->value).kind == YamlNode::Kind::Scalar &&
        ctx_.text(limit_field->item()).value_or("") == "plan") {
      return parsePlanLimit(map, route);
    }
    parseShape(map, limit, true);
    if (const Field* f = map.find("key")) {
      parseKey(f->item(), limit.key);
    } else {
      limit.key.push_back({RateLimitKeyPart::Kind::Ip, {}});
    }
    checkKeyNeedsAuth(map, limit, route);
    if (const Field* f = map.find("mode")) {
      if (auto i = ctx_.choice(f->item(), kModes)) limit.mode = static_cast<RateLimit::Mode>(*i);
      if (limit.mode == RateLimit::Mode::Delay && limit.algorithm != RateLimit::Algorithm::Gcra) {
        ctx_.error(ctx_.pos(f->item()), "\"mode: delay\" needs algorithm: gcra");
      }
    }
    if (const Field* f = map.find("max_delay")) {
      limit.max_delay = ctx_.duration(f->item(), true).value_or(limit.max_delay);
      if (limit.mode != RateLimit::Mode::Delay) {
        ctx_.error(f->key_pos, "\"max_delay\" applies to mode: delay only");
      }
    }
    if (const Field* f = map.find("sync")) {
      parseSync(*f, limit);
    }
    limit.name = defaultName(route, limit);
    if (const Field* f = map.find("name")) {
      if (auto name = ctx_.text(f->item())) {
        if (!isPolicyName(*name)) {
          ctx_.error(ctx_.pos(f->item()), "invalid rate limit name " + quote(*name) +
                                              " (use up to 64 of a-z, 0-9, '_', '-' and '.')");
        }
        limit.name = std::move(*name);
      }
    }
    return limit;
  }

  RateLimit parsePlanLimit(const MapFields& map, const Route& route) {
    RateLimit limit;
    limit.name = "plan";
    limit.from_plan = true;
    limit.key.push_back({RateLimitKeyPart::Kind::Consumer, {}});
    for (const Field& f : map.fields) {
      if (f.key == "limit") continue;
      if (f.key == "key") {
        std::vector<RateLimitKeyPart> key;
        parseKey(f.item(), key);
        if (key.size() != 1 || key[0].kind != RateLimitKeyPart::Kind::Consumer) {
          ctx_.error(ctx_.pos(f.item()), "\"limit: plan\" counts per consumer: its key is "
                                         "consumer");
        }
        continue;
      }
      ctx_.error(f.key_pos, "\"" + std::string(f.key) +
                                "\" cannot be set with \"limit: plan\" (the plan gives it)");
    }
    if (config_.plans.empty()) {
      ctx_.error(map.pos, "\"limit: plan\" needs a top-level \"plans\" section");
    }
    checkKeyNeedsAuth(map, limit, route);
    return limit;
  }

  void parseSync(const Field& field, RateLimit& limit) {
    auto d = ctx_.duration(field.item(), true);
    if (!d) return;
    if (*d < kMinSync || *d > kMaxSync) {
      ctx_.error(ctx_.pos(field.item()), "\"sync\" must be between 10ms and 10s");
    } else if (limit.store != RateLimit::Store::Redis) {
      ctx_.error(field.key_pos, "\"sync\" needs store: redis (it batches the Redis updates)");
    } else if (limit.algorithm == RateLimit::Algorithm::Gcra) {
      ctx_.error(field.key_pos,
                 "\"sync\" needs algorithm: fixed_window or sliding_window (window counts add "
                 "up across gateways; a token bucket's state does not)");
    } else if (limit.mode == RateLimit::Mode::Delay) {
      ctx_.error(field.key_pos, "\"sync\" cannot be combined with mode: delay");
    } else if (*d > limit.window) {
      ctx_.error(ctx_.pos(field.item()),
                 "\"sync\" must not be longer than the window (a window would end between "
                 "two syncs)");
    } else {
      limit.sync = *d;
    }
  }

  void parseKey(const Item& item, std::vector<RateLimitKeyPart>& out) {
    std::vector<Item> parts;
    if (ctx_.node(item.node).kind == YamlNode::Kind::Sequence) {
      parts = ctx_.readList(item, true);
    } else {
      parts.push_back(item);
    }
    for (const Item& part : parts) {
      auto text = ctx_.text(part);
      if (!text) continue;
      RateLimitKeyPart key;
      std::string_view t = *text;
      if (t == "ip") {
        key.kind = RateLimitKeyPart::Kind::Ip;
      } else if (t == "consumer") {
        key.kind = RateLimitKeyPart::Kind::Consumer;
      } else if (t == "route") {
        key.kind = RateLimitKeyPart::Kind::Route;
      } else if (t.starts_with("header:") && t.size() > 7) {
        key.kind = RateLimitKeyPart::Kind::Header;
        key.name = lowercase(t.substr(7));
        if (!isPlainName(key.name)) {
          ctx_.error(ctx_.pos(part), "invalid header name in key " + quote(t));
        }
      } else if (t.starts_with("claim:") && t.size() > 6) {
        key.kind = RateLimitKeyPart::Kind::Claim;
        key.name = std::string(t.substr(6));
      } else {
        ctx_.error(ctx_.pos(part), "invalid rate limit key " + quote(t) +
                                       " (use ip, consumer, route, header:NAME or claim:NAME)");
        continue;
      }
      bool repeated = std::any_of(out.begin(), out.end(), [&](const RateLimitKeyPart& k) {
        return k.kind == key.kind && k.name == key.name;
      });
      if (repeated) {
        ctx_.error(ctx_.pos(part), "key part " + quote(t) + " is listed twice");
        continue;
      }
      out.push_back(std::move(key));
    }
  }

  void checkKeyNeedsAuth(const MapFields& map, const RateLimit& limit, const Route& route) {
    if (!route.auth_public) return;
    for (const RateLimitKeyPart& part : limit.key) {
      if (part.kind == RateLimitKeyPart::Kind::Consumer ||
          part.kind == RateLimitKeyPart::Kind::Claim) {
        ctx_.error(map.pos, "rate limit key " + quote(kindName(part.kind)) + " on route " +
                                quote(route.name) +
                                " needs auth providers (the route is public: nobody is known)");
        return;
      }
    }
  }

  static std::string defaultName(const Route& route, const RateLimit& limit) {
    std::string name;
    appendNamePart(name, route.name);
    for (const RateLimitKeyPart& part : limit.key) {
      name.push_back('-');
      name.append(kindName(part.kind));
      if (!part.name.empty()) {
        name.push_back('_');
        appendNamePart(name, part.name);
      }
    }
    return name;
  }

  Context& ctx_;
  const Config& config_;
};

}  // namespace

std::map<std::string, Plan> parsePlans(Context& ctx, const Item& item, const Config& config) {
  std::map<std::string, Plan> plans;
  MapFields map = ctx.readMap(item, "plans", nullptr);
  RateLimitParser parser(ctx, config);
  for (const Field& f : map.fields) {
    Plan plan = parser.parsePlan(f);
    plans.emplace(plan.name, std::move(plan));
  }
  return plans;
}

void parseRouteRateLimits(Context& ctx, const Item& item, const Config& config, Route& route) {
  RateLimitParser(ctx, config).parseRouteLimits(item, route);
}

}  // namespace portico::filters
