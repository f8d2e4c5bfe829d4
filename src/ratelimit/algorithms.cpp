#include "ratelimit/algorithms.hpp"

#include <algorithm>

namespace portico::ratelimit {
namespace {

using Algorithm = config::RateLimit::Algorithm;

int64_t interval(const Params& p) {
  return std::max<int64_t>(1, p.window_ns / static_cast<int64_t>(p.limit));
}

Decision decideGcra(CounterState& s, const Params& p, int64_t now) {
  const int64_t t = interval(p);
  const int64_t depth = static_cast<int64_t>(p.limit + p.burst) * t;
  const int64_t tat = std::max(s.a, now);
  const int64_t allow_at = tat + t - depth;  // the earliest time this request conforms
  Decision d;
  if (allow_at <= now || (p.max_delay_ns > 0 && allow_at - now <= p.max_delay_ns)) {
    d.allowed = true;
    d.delay_ns = std::max<int64_t>(0, allow_at - now);
    s.a = tat + t;
  } else {
    d.retry_after_ns = allow_at - now;
  }
  const int64_t used = std::max(s.a, now) - now;
  d.remaining = used >= depth ? 0 : static_cast<uint64_t>((depth - used) / t);
  if (d.delay_ns > 0) d.remaining = 0;
  d.reset_ns = used;
  return d;
}

Decision decideFixed(CounterState& s, const Params& p, int64_t now, const Window* window) {
  rollWindow(s, p, now, window);
  Decision d;
  const int64_t limit = static_cast<int64_t>(p.limit);
  d.reset_ns = (window != nullptr ? window->end_ns : s.a + p.window_ns) - now;
  if (s.b < limit) {
    d.allowed = true;
    ++s.b;
  } else {
    d.retry_after_ns = d.reset_ns;
  }
  d.remaining = static_cast<uint64_t>(limit - s.b);
  return d;
}

Decision decideSliding(CounterState& s, const Params& p, int64_t now) {
  rollWindow(s, p, now);
  const __int128 w = p.window_ns;
  const __int128 left = w - (now - s.a);  // how much of the previous window still counts
  const __int128 limit = static_cast<__int128>(p.limit);
  // weighted = c * left / w; admitted while weighted + b + 1 <= limit, in integers.
  auto fits = [&](int64_t extra) { return s.c * left + (s.b + extra) * w <= limit * w; };
  Decision d;
  d.reset_ns = s.a + p.window_ns - now;
  if (fits(1)) {
    d.allowed = true;
    ++s.b;
  } else if (s.b + 1 <= static_cast<int64_t>(p.limit) && s.c > 0) {
    // The previous window's weight has to shrink: until c * left' <= (limit - b - 1) * w.
    __int128 left_ok = (limit - s.b - 1) * w / s.c;
    d.retry_after_ns = static_cast<int64_t>(left - left_ok) + 1;
  } else {
    // Only the next window helps, and there this window's count is the weighted one.
    __int128 next_left_ok = s.b > 0 ? (limit - 1) * w / s.b : w;
    d.retry_after_ns = d.reset_ns + static_cast<int64_t>(w - next_left_ok) + 1;
  }
  __int128 used_w = s.c * left + s.b * w;
  d.remaining = used_w >= limit * w ? 0 : static_cast<uint64_t>((limit * w - used_w) / w);
  return d;
}

}  // namespace

bool rollWindow(CounterState& s, const Params& p, int64_t now_ns, const Window* window) {
  const int64_t start = window != nullptr ? window->start_ns : now_ns - now_ns % p.window_ns;
  if (s.a == start) return false;
  s.c = s.a == start - p.window_ns ? s.b : 0;
  s.b = 0;
  s.a = start;
  return true;
}

Params Params::from(const config::RateLimit& limit) {
  Params p;
  p.algorithm = limit.algorithm;
  p.limit = limit.limit;
  p.burst = limit.burst;
  p.window_ns = static_cast<int64_t>(limit.window.count()) * 1'000'000;
  if (limit.mode == config::RateLimit::Mode::Delay) {
    p.max_delay_ns = static_cast<int64_t>(limit.max_delay.count()) * 1'000'000;
  }
  return p;
}

Decision decide(CounterState& state, const Params& params, int64_t now_ns,
                const Window* window) {
  switch (params.algorithm) {
    case Algorithm::Gcra: return decideGcra(state, params, now_ns);
    case Algorithm::FixedWindow: return decideFixed(state, params, now_ns, window);
    case Algorithm::SlidingWindow: return decideSliding(state, params, now_ns);
  }
  return {};
}

void giveBack(CounterState& state, const Params& params) {
  if (params.algorithm == Algorithm::Gcra) {
    state.a -= interval(params);
  } else if (state.b > 0) {
    --state.b;
  }
}

void reportGivenBack(Decision& decision, const Params& params) {
  if (!decision.allowed || decision.delay_ns > 0) return;
  ++decision.remaining;
  if (params.algorithm == Algorithm::Gcra) {
    decision.reset_ns = std::max<int64_t>(0, decision.reset_ns - interval(params));
  }
}

int64_t idleFrom(const CounterState& state, const Params& params) {
  if (params.algorithm == Algorithm::Gcra) return state.a;
  return state.a + 2 * params.window_ns;  // the previous window's count matters one more window
}

}  // namespace portico::ratelimit
