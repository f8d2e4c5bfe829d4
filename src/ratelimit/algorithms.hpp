#pragma once
// The arithmetic of one rate-limit counter, with no storage and no clock of its own, so the
// local store, the batched mode and the unit tests share it (the Redis script mirrors it in Lua).
//
// gcra: the generic cell rate algorithm, a token bucket kept as one number, the theoretical
// arrival time (TAT) of the next request at the sustained rate. Each request moves it on by the
// emission interval T = window / limit; a request conforms while TAT - now stays within the
// bucket's depth, (limit + burst) * T, so a full bucket admits limit + burst back to back.
// fixed_window: a count per window aligned to the clock. sliding_window: the current window's
// count plus the previous one's, weighted by how much of it the sliding window still covers.

#include <cstdint>

#include "config/model.hpp"

namespace portico::ratelimit {

struct Params {
  config::RateLimit::Algorithm algorithm = config::RateLimit::Algorithm::Gcra;
  uint64_t limit = 1;
  uint64_t burst = 0;
  int64_t window_ns = 1'000'000'000;
  int64_t max_delay_ns = 0;  // > 0: mode delay

  static Params from(const config::RateLimit& limit);
};

// gcra: a = TAT (ns). Windows: a = start of the current window (ns), b = its count, c = the
// previous window's count.
struct CounterState {
  int64_t a = 0;
  int64_t b = 0;
  int64_t c = 0;
};

struct Decision {
  bool allowed = false;
  int64_t delay_ns = 0;        // allowed in mode delay: wait this long first
  uint64_t remaining = 0;      // requests that would still be admitted now
  int64_t reset_ns = 0;        // until the limit is whole again (gcra) / the window ends
  int64_t retry_after_ns = 0;  // refused: until a request would be admitted
};

// A fixed window given by the caller instead of one aligned to the epoch (calendar months).
struct Window {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
};

// Decides one request at `now_ns` and, when it is allowed, counts it in `state`.
Decision decide(CounterState& state, const Params& params, int64_t now_ns,
                const Window* window = nullptr);
// Window algorithms: moves `state` on to the window holding `now_ns` (the count of the one
// before becomes the previous count when they follow each other). True if it moved.
bool rollWindow(CounterState& state, const Params& params, int64_t now_ns,
                const Window* window = nullptr);
// Takes back one request counted by decide() (a later limit refused it).
void giveBack(CounterState& state, const Params& params);
// What `decision` reports once its request was given back: the limit as it stands.
void reportGivenBack(Decision& decision, const Params& params);
// From this time on the state is the same as no state at all, and may be forgotten.
int64_t idleFrom(const CounterState& state, const Params& params);

// Whole seconds, rounded up, at least `min`.
inline int64_t ceilSeconds(int64_t ns, int64_t min = 0) {
  int64_t s = ns <= 0 ? 0 : (ns + 999'999'999) / 1'000'000'000;
  return s < min ? min : s;
}

}  // namespace portico::ratelimit
