// The counter arithmetic: exact admissions, refill, delay, retry hints, and giving back.

#include "ratelimit/algorithms.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "ratelimit/local_store.hpp"

namespace portico::ratelimit {
namespace {

using Algorithm = config::RateLimit::Algorithm;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kStart = 1'700'000'000 * kSecond;  // on a window boundary of 1 s and 10 s

Params params(Algorithm a, uint64_t limit, int64_t window, uint64_t burst = 0) {
  Params p;
  p.algorithm = a;
  p.limit = limit;
  p.window_ns = window;
  p.burst = burst;
  return p;
}

int admitted(CounterState& s, const Params& p, int64_t now, int tries) {
  int n = 0;
  for (int i = 0; i < tries; ++i) n += decide(s, p, now).allowed ? 1 : 0;
  return n;
}

TEST(Gcra, AFullBucketAdmitsLimitPlusBurstBackToBack) {
  CounterState s;
  Params p = params(Algorithm::Gcra, 20, kSecond, 40);
  EXPECT_EQ(admitted(s, p, kStart, 100), 60);
}

TEST(Gcra, RefillsAtTheSustainedRate) {
  CounterState s;
  Params p = params(Algorithm::Gcra, 10, kSecond);
  EXPECT_EQ(admitted(s, p, kStart, 50), 10);
  EXPECT_EQ(admitted(s, p, kStart + kSecond / 10 - 1, 5), 0);
  EXPECT_EQ(admitted(s, p, kStart + kSecond / 10, 5), 1);
  EXPECT_EQ(admitted(s, p, kStart + 2 * kSecond, 50), 10);  // full again, never more
}

TEST(Gcra, ReportsRemainingResetAndRetryAfter) {
  CounterState s;
  Params p = params(Algorithm::Gcra, 4, 4 * kSecond);
  Decision d = decide(s, p, kStart);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 3u);
  EXPECT_EQ(d.reset_ns, kSecond);
  admitted(s, p, kStart, 3);
  d = decide(s, p, kStart);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.retry_after_ns, kSecond);
  EXPECT_EQ(ceilSeconds(d.retry_after_ns, 1), 1);
}

TEST(Gcra, DelayModeQueuesUpToMaxDelay) {
  CounterState s;
  Params p = params(Algorithm::Gcra, 10, kSecond);
  p.max_delay_ns = kSecond / 2;
  std::vector<int64_t> delays;
  for (int i = 0; i < 20; ++i) {
    Decision d = decide(s, p, kStart);
    if (d.allowed) delays.push_back(d.delay_ns);
  }
  // 10 at once, then one per 100 ms for up to 500 ms.
  ASSERT_EQ(delays.size(), 15u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(delays[i], 0);
  for (int i = 10; i < 15; ++i) EXPECT_EQ(delays[i], (i - 9) * kSecond / 10);
}

TEST(Gcra, GiveBackReturnsTheRequest) {
  CounterState s;
  Params p = params(Algorithm::Gcra, 2, 3600 * kSecond);
  EXPECT_EQ(admitted(s, p, kStart, 2), 2);
  giveBack(s, p);
  EXPECT_EQ(admitted(s, p, kStart, 5), 1);
}

TEST(Gcra, AGivenBackRequestIsReportedAsIfNeverCounted) {
  CounterState s;
  Params p = params(Algorithm::Gcra, 100, 3600 * kSecond);
  Decision first = decide(s, p, kStart);
  CounterState before = s;
  Decision second = decide(s, p, kStart);
  giveBack(s, p);
  reportGivenBack(second, p);
  EXPECT_EQ(s.a, before.a);
  EXPECT_EQ(second.remaining, first.remaining);
  EXPECT_EQ(second.reset_ns, first.reset_ns);
}

TEST(FixedWindow, AnExplicitWindowSetsItsStartAndEnd) {
  CounterState s;
  Params p = params(Algorithm::FixedWindow, 2, 31 * 86'400 * kSecond);
  Window month{kStart - 5 * kSecond, kStart + 7 * kSecond};
  EXPECT_EQ(admitted(s, p, kStart, 2), 2);  // without it, the epoch-aligned window
  s = {};
  EXPECT_TRUE(decide(s, p, kStart, &month).allowed);
  Decision d = decide(s, p, kStart, &month);
  EXPECT_EQ(d.reset_ns, 7 * kSecond);
  d = decide(s, p, kStart, &month);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ns, 7 * kSecond);
  EXPECT_EQ(s.a, month.start_ns);
}

TEST(FixedWindow, CountsPerAlignedWindow) {
  CounterState s;
  Params p = params(Algorithm::FixedWindow, 10, kSecond);
  EXPECT_EQ(admitted(s, p, kStart + kSecond / 2, 30), 10);
  Decision d = decide(s, p, kStart + kSecond / 2);
  EXPECT_EQ(d.retry_after_ns, kSecond / 2);
  EXPECT_EQ(admitted(s, p, kStart + kSecond, 30), 10);
  EXPECT_EQ(idleFrom(s, p), kStart + 3 * kSecond);
}

TEST(SlidingWindow, WeighsThePreviousWindow) {
  CounterState s;
  Params p = params(Algorithm::SlidingWindow, 10, 10 * kSecond);
  EXPECT_EQ(admitted(s, p, kStart, 10), 10);
  // 30% into the next window, 70% of the previous 10 still count: 3 more fit.
  EXPECT_EQ(admitted(s, p, kStart + 13 * kSecond, 10), 3);
  Decision d = decide(s, p, kStart + 13 * kSecond);
  EXPECT_FALSE(d.allowed);
  EXPECT_GT(d.retry_after_ns, 0);
  // Two windows later nothing is left of either.
  EXPECT_EQ(admitted(s, p, kStart + 30 * kSecond, 20), 10);
}

TEST(SlidingWindow, RetryAfterIsWhenARequestFits) {
  CounterState s;
  Params p = params(Algorithm::SlidingWindow, 10, 10 * kSecond);
  admitted(s, p, kStart, 10);
  Decision d = decide(s, p, kStart + 12 * kSecond);
  ASSERT_TRUE(d.allowed);  // 8 of 10 weigh in: two fit
  ASSERT_TRUE(decide(s, p, kStart + 12 * kSecond).allowed);
  d = decide(s, p, kStart + 12 * kSecond);
  ASSERT_FALSE(d.allowed);
  CounterState later = s;
  EXPECT_TRUE(decide(later, p, kStart + 12 * kSecond + d.retry_after_ns).allowed);
}

TEST(LocalStore, ExactAcrossThreads) {
  LocalStore store;
  Params p = params(Algorithm::Gcra, 500, 3600 * kSecond, 100);
  std::atomic<int> total{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (store.take("k", p, kStart).allowed) total.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(total.load(), 600);
}

// Workers read the clock before they take a stripe's lock, so decisions can arrive out of time
// order: each still reports a remaining count of its own (limit + burst - 1 down to 0, once each).
TEST(LocalStore, GcraRemainingIsCountedOnceEachWhenTimesArriveOutOfOrder) {
  LocalStore store;
  Params p = params(Algorithm::Gcra, 50, 3600 * kSecond, 20);
  std::vector<uint64_t> remaining;
  for (int i = 0; i < 70; ++i) {
    // Every other decision comes with a time a millisecond older than the one before it.
    const int64_t now = kStart + (i / 2) * 2 * kMillisecond + (i % 2 == 0 ? kMillisecond : 0);
    Decision d = store.take("k", p, now);
    ASSERT_TRUE(d.allowed) << i;
    remaining.push_back(d.remaining);
  }
  std::vector<uint64_t> expected(70);
  for (uint64_t i = 0; i < 70; ++i) expected[i] = 69 - i;
  EXPECT_EQ(remaining, expected);
  EXPECT_FALSE(store.take("k", p, kStart).allowed);
}

TEST(LocalStore, ForgetsIdleCountersAndStaysBounded) {
  LocalStore store(64 * 4);  // 4 per stripe
  Params p = params(Algorithm::Gcra, 1, kSecond);
  for (int i = 0; i < 1000; ++i) store.take("key" + std::to_string(i), p, kStart);
  EXPECT_LE(store.size(), 64u * 4);
  store.sweep(kStart + 2 * kSecond);
  EXPECT_EQ(store.size(), 0u);
}

// Review M6: a full store makes room from idle counters first, and evicts a live one (counted
// in evictions()) only when none is idle, found by sampling at a clock hand or, when the sample
// has none, a scan. A sample of 1 makes the scan happen about every other time.
TEST(LocalStore, FullStoreNeverEvictsLiveCountersWhileIdleOnesExist) {
  constexpr size_t kCapacity = 64 * 256;
  for (size_t sample : {size_t{1}, LocalStore::kMaxSample}) {
    SCOPED_TRACE(sample);
    LocalStore store(kCapacity, sample);
    Params hour = params(Algorithm::Gcra, 1, 3600 * kSecond);
    const auto key = [](const char* prefix, size_t i) { return prefix + std::to_string(i); };
    for (size_t i = 0; i < 4 * kCapacity; ++i) store.take(key("live", i), hour, kStart);
    EXPECT_LE(store.size(), kCapacity);
    const uint64_t filled = store.evictions();
    EXPECT_GE(filled, 3 * kCapacity);  // full of live counters: each new one evicted one

    // Every other one becomes idle (its only request given back): ~128 in each stripe, against
    // ~4 new counters per stripe.
    for (size_t i = 0; i < 4 * kCapacity; i += 2) store.giveBack(key("live", i), hour);
    const int64_t later = kStart + kSecond;
    for (size_t i = 0; i < 256; ++i) ASSERT_TRUE(store.take(key("new", i), hour, later).allowed);
    EXPECT_EQ(store.evictions(), filled) << "a live counter went while idle ones were left";
    for (size_t i = 0; i < 256; ++i) EXPECT_FALSE(store.take(key("new", i), hour, later).allowed);
    EXPECT_LE(store.size(), kCapacity);

    // Once no idle one is left, each new counter evicts one live one.
    for (size_t i = 0; i < kCapacity; ++i) store.take(key("more", i), hour, later);
    EXPECT_GT(store.evictions(), filled);
    EXPECT_LE(store.size(), kCapacity);
  }
}

TEST(LocalStore, ConcurrencyCountersAreStablePerRoute) {
  LocalStore store;
  std::atomic<int64_t>* a = store.concurrencyCounter("users");
  EXPECT_EQ(a, store.concurrencyCounter("users"));
  EXPECT_NE(a, store.concurrencyCounter("orders"));
}

}  // namespace
}  // namespace portico::ratelimit
