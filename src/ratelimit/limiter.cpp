#include "ratelimit/limiter.hpp"

#include <ctime>
#include <unordered_map>

namespace portico::ratelimit {
namespace {

using Part = config::RateLimitKeyPart;
constexpr char kSeparator = '\x1f';
constexpr size_t kMaxValueBytes = 256;

// "1s", "1m", "250ms": the window as a person would write it.
std::string windowText(int64_t ms) {
  struct Unit {
    int64_t ms;
    const char* suffix;
  };
  for (Unit u : {Unit{86'400'000, "d"}, Unit{3'600'000, "h"}, Unit{60'000, "m"}, Unit{1'000, "s"}}) {
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.suffix;
  }
  return std::to_string(ms) + "ms";
}

std::string algorithmCode(config::RateLimit::Algorithm a) {
  switch (a) {
    case config::RateLimit::Algorithm::Gcra: return "g";
    case config::RateLimit::Algorithm::FixedWindow: return "f";
    case config::RateLimit::Algorithm::SlidingWindow: return "s";
  }
  return "?";
}

// What the Redis script needs to know of a limit (redis_script.hpp), formatted once.
void compileRedisArgs(CompiledLimit& c, std::string code) {
  const Params& p = c.params;
  c.redis_args = {std::move(code), std::to_string(p.limit), std::to_string(p.window_ns / 1000),
                  std::to_string(p.burst), std::to_string(p.max_delay_ns / 1000)};
}

std::string keyLabel(const std::vector<config::RateLimitKeyPart>& key) {
  static constexpr const char* kKinds[] = {"ip", "consumer", "route", "header:", "claim:"};
  std::string label;
  for (const Part& p : key) {
    if (!label.empty()) label += ',';
    label += kKinds[static_cast<size_t>(p.kind)];
    label += p.name;
  }
  return label;
}

CompiledLimit compile(const config::RateLimit& limit, const std::string& scope) {
  CompiledLimit c;
  c.key = limit.key;
  c.params = Params::from(limit);
  c.sync_ns = static_cast<int64_t>(limit.sync.count()) * 1'000'000;
  c.redis = limit.store == config::RateLimit::Store::Redis && c.sync_ns == 0;
  const int64_t window_ms = limit.window.count();
  const char* store = c.sync_ns > 0 ? "b" : c.redis ? "r" : "l";
  c.id = scope + kSeparator + limit.name + kSeparator + algorithmCode(limit.algorithm) +
         std::to_string(limit.limit) + "/" + std::to_string(window_ms) + "+" +
         std::to_string(limit.burst) + store;
  for (const Part& p : limit.key) {
    c.id += kSeparator;
    c.id += std::to_string(static_cast<int>(p.kind)) + p.name;
  }
  c.name = "\"" + limit.name + "\"";
  c.policy = c.name + ";q=" + std::to_string(limit.limit) +
             ";w=" + std::to_string((window_ms + 999) / 1000);
  c.message = "rate limit of " + std::to_string(limit.limit) + " per " + windowText(window_ms) +
              " exceeded";
  c.key_label = keyLabel(c.key);
  compileRedisArgs(c, algorithmCode(limit.algorithm));
  return c;
}

CompiledLimit compileQuota(const config::Quota& quota, const std::string& plan) {
  CompiledLimit c;
  c.kind = CompiledLimit::Kind::Quota;
  c.key.push_back({Part::Kind::Consumer, {}});
  c.params.algorithm = config::RateLimit::Algorithm::FixedWindow;
  c.params.limit = quota.limit;
  c.params.window_ns = quota.calendar_month ? 31LL * 86'400'000'000'000
                                             : static_cast<int64_t>(quota.period.count()) * 1'000'000;
  c.redis = quota.in_redis;
  c.calendar_month = quota.calendar_month;
  const std::string period =
      quota.calendar_month ? "month" : windowText(static_cast<int64_t>(quota.period.count()));
  c.id = "quota" + std::string(1, kSeparator) + plan + kSeparator + std::to_string(quota.limit) +
         "/" + period;
  c.name = "\"quota\"";
  const int64_t period_s = quota.calendar_month ? 30LL * 86'400 : quota.period.count() / 1000;
  c.policy = c.name + ";q=" + std::to_string(quota.limit) + ";w=" + std::to_string(period_s);
  c.message = "quota of " + std::to_string(quota.limit) + " per " + period + " exceeded";
  c.key_label = keyLabel(c.key);
  compileRedisArgs(c, "q");
  return c;
}

// Days since the epoch of the first day of a civil month (Howard Hinnant's algorithm).
int64_t daysFromCivil(int64_t y, unsigned m) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

Window quotaPeriod(const CompiledLimit& quota, int64_t now_ns) {
  if (!quota.calendar_month) {
    const int64_t start = now_ns - now_ns % quota.params.window_ns;
    return {start, start + quota.params.window_ns};
  }
  time_t seconds = static_cast<time_t>(now_ns / 1'000'000'000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  const int64_t year = utc.tm_year + 1900;
  const unsigned month = static_cast<unsigned>(utc.tm_mon + 1);
  constexpr int64_t kDayNs = 86'400'000'000'000;
  return {daysFromCivil(year, month) * kDayNs,
          (month == 12 ? daysFromCivil(year + 1, 1) : daysFromCivil(year, month + 1)) * kDayNs};
}

Limiter::Limiter(const config::Config& config) : config_(config) {
  plans_.reserve(config.plans.size());
  std::unordered_map<std::string, int32_t> plan_index;
  for (const auto& [name, plan] : config.plans) {
    PlanLimits limits;
    if (plan.rate_limit) {
      limits.rate = std::make_unique<CompiledLimit>(compile(*plan.rate_limit, "plan:" + name));
    }
    if (plan.quota) limits.quota = std::make_unique<CompiledLimit>(compileQuota(*plan.quota, name));
    asks_redis_ = asks_redis_ || (limits.rate && limits.rate->redis) ||
                  (limits.quota && limits.quota->redis);
    plan_index.emplace(name, static_cast<int32_t>(plans_.size()));
    if (name == "default") default_plan_ = static_cast<int32_t>(plans_.size());
    plans_.push_back(std::move(limits));
  }
  consumer_plan_.reserve(config.consumers.size());
  for (const config::Consumer& consumer : config.consumers) {
    auto it = plan_index.find(consumer.plan);
    consumer_plan_.push_back(it == plan_index.end() ? -1 : it->second);
  }
  routes_.resize(config.routes.size());
  for (size_t i = 0; i < config.routes.size(); ++i) {
    const config::Route& route = config.routes[i];
    for (const config::RateLimit& limit : route.rate_limits) {
      CompiledLimit c = limit.from_plan ? CompiledLimit{} : compile(limit, "route:" + route.name);
      c.from_plan = limit.from_plan;
      asks_redis_ = asks_redis_ || c.redis;
      if (c.sync_ns > 0 && (shortest_sync_ns_ == 0 || c.sync_ns < shortest_sync_ns_)) {
        shortest_sync_ns_ = c.sync_ns;
      }
      routes_[i].limits.push_back(std::move(c));
    }
  }
}

Limiter::~Limiter() = default;

const Limiter::PlanLimits* Limiter::planOf(const config::Consumer* consumer) const {
  int32_t index = default_plan_;
  if (consumer != nullptr && !config_.consumers.empty()) {
    size_t position = static_cast<size_t>(consumer - config_.consumers.data());
    if (position < consumer_plan_.size() && consumer_plan_[position] >= 0) {
      index = consumer_plan_[position];
    }
  }
  return index < 0 ? nullptr : &plans_[static_cast<size_t>(index)];
}

void Limiter::fillKey(const CompiledLimit& limit, const RequestFacts& facts,
                      std::string& out) const {
  out.assign(limit.id);
  for (const Part& part : limit.key) {
    out.push_back(kSeparator);
    std::string_view value;
    std::string claim_value;
    switch (part.kind) {
      case Part::Kind::Ip: value = facts.client_ip; break;
      case Part::Kind::Consumer:
        if (facts.consumer != nullptr) value = facts.consumer->name;
        break;
      case Part::Kind::Route: break;  // the id already names the route
      case Part::Kind::Header:
        if (const http::HeaderField* h = http::findHeader(facts.headers, part.name)) {
          value = h->value;
        }
        break;
      case Part::Kind::Claim:
        if (facts.claims != nullptr) {
          claim_value = facts.claims->claim(part.name);
          value = claim_value;
        }
        break;
    }
    // Long values are cut: they are the client's to choose, and must not grow the store.
    out.append(value.substr(0, kMaxValueBytes));
  }
}

void Limiter::collect(uint32_t route, const RequestFacts& facts, int64_t now_ns,
                      std::vector<Touch>& touches, size_t& count) const {
  count = 0;
  auto next = [&touches, &count]() -> Touch& {
    if (count == touches.size()) touches.emplace_back();
    Touch& t = touches[count++];
    t.decided = false;
    t.decision = {};
    t.period = {};
    return t;
  };
  for (const CompiledLimit& limit : routes_[route].limits) {
    if (!limit.from_plan) {
      Touch& t = next();
      t.limit = &limit;
      fillKey(limit, facts, t.key);
      continue;
    }
    const PlanLimits* plan = planOf(facts.consumer);
    if (plan == nullptr) continue;
    if (plan->rate) {
      Touch& t = next();
      t.limit = plan->rate.get();
      fillKey(*plan->rate, facts, t.key);
    }
    if (plan->quota) {
      Touch& t = next();
      t.limit = plan->quota.get();
      fillKey(*plan->quota, facts, t.key);
      t.period = quotaPeriod(*plan->quota, now_ns);
      t.key.push_back(kSeparator);
      t.key.append(std::to_string(t.period.start_ns / 1'000'000'000));
    }
  }
}

}  // namespace portico::ratelimit
