// The batched mode's local side: the trust share before the first sync, leases, standby leases
// for idle keys, failures that keep every admission, the Redis-down share, window rollover, and
// exactness across threads. Redis's side is played by hand: takeBatch() and applyAnswer().

#include "ratelimit/sync_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace portico::ratelimit {
namespace {

using Algorithm = config::RateLimit::Algorithm;
using Op = SyncStore::Item::Op;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMs;
constexpr int64_t kStart = 1'700'000'000 * kSecond;  // on a 10 s window boundary
constexpr int64_t kSync = 100 * kMs;

Params windowParams(uint64_t limit, int64_t window = 10 * kSecond,
                    Algorithm a = Algorithm::FixedWindow) {
  Params p;
  p.algorithm = a;
  p.limit = limit;
  p.window_ns = window;
  return p;
}

int admitted(SyncStore& store, const Params& p, int64_t now, int tries,
             std::string_view key = "k") {
  int n = 0;
  for (int i = 0; i < tries; ++i) n += store.take(key, p, kSync, now).allowed ? 1 : 0;
  return n;
}

std::vector<SyncStore::Item> batch(SyncStore& store, int64_t now) {
  std::vector<SyncStore::Item> items;
  store.takeBatch(now, items);
  return items;
}

// Syncs the one key: the batch must hold exactly one item, answered with `lease`.
SyncStore::Item syncOnce(SyncStore& store, int64_t now, int64_t lease, int64_t fleet = 0) {
  auto items = batch(store, now);
  EXPECT_EQ(items.size(), 1u);
  if (items.empty()) return {};
  store.applyAnswer(items[0], {fleet, 0, lease, lease});
  return items[0];
}

TEST(SyncStore, AdmitsTheTrustShareBeforeTheFirstSync) {
  SyncStore store;
  store.setFleetSize(2);
  // ceil(1000 * 100ms / 10s / 2) = 5
  EXPECT_EQ(admitted(store, windowParams(1000), kStart, 20), 5);
  Decision refused = store.take("k", windowParams(1000), kSync, kStart);
  EXPECT_FALSE(refused.allowed);
  EXPECT_GT(refused.retry_after_ns, 0);
  EXPECT_LE(refused.retry_after_ns, kSync);  // until the next sync, not the window's end
}

TEST(SyncStore, TheTrustShareIsAtLeastOneAndAtMostTheLimit) {
  SyncStore store;
  store.setFleetSize(3);
  EXPECT_EQ(admitted(store, windowParams(1), kStart, 5, "tiny"), 1);
  Params p = windowParams(4, kSync);  // sync as long as the window: the whole limit
  store.setFleetSize(1);
  EXPECT_EQ(admitted(store, p, kStart, 10, "whole"), 4);
}

TEST(SyncStore, ALeaseAdmitsExactlyItsSize) {
  SyncStore store;
  const Params p = windowParams(1000);
  EXPECT_EQ(admitted(store, p, kStart, 10), 10);  // the trust share, fleet of one
  auto items = batch(store, kStart + kSync);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].op, Op::Update);
  EXPECT_EQ(items[0].delta, 10);
  EXPECT_EQ(items[0].window_start_ns, kStart);
  store.applyAnswer(items[0], {10, 0, 990, 7});
  EXPECT_EQ(admitted(store, p, kStart + kSync, 20), 7);
}

TEST(SyncStore, AdmissionsWhileASyncIsInFlightAreChargedToTheNewLease) {
  SyncStore store;
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 10);
  auto items = batch(store, kStart + kSync);
  ASSERT_EQ(items.size(), 1u);
  // The old allowance is used up, so these are refused; a lease of 0 before the answer.
  EXPECT_EQ(admitted(store, p, kStart + kSync, 3), 0);
  store.applyAnswer(items[0], {10, 0, 990, 20});
  EXPECT_EQ(admitted(store, p, kStart + kSync, 30), 20);
  // All of them go with the next batch.
  auto next = batch(store, kStart + 2 * kSync);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].delta, 20);
}

TEST(SyncStore, ARefusedRequestAsksForALeaseAtTheNextSync) {
  SyncStore store;
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 10);
  syncOnce(store, kStart + kSync, 0);  // the fleet had no room
  EXPECT_EQ(admitted(store, p, kStart + kSync, 1), 0);
  auto items = batch(store, kStart + 2 * kSync);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].op, Op::Update);
  EXPECT_EQ(items[0].delta, 0);
}

TEST(SyncStore, AnIdleKeyKeepsOnlyAStandbyLease) {
  SyncStore store;
  store.setFleetSize(2);
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 1);
  syncOnce(store, kStart + kSync, 400);
  // Nothing for an interval: the lease shrinks to a tenth of this gateway's share.
  auto items = batch(store, kStart + 2 * kSync);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].op, Op::Idle);
  EXPECT_EQ(items[0].standby, 50);
  store.applyAnswer(items[0], {1, 0, 0, 50});
  EXPECT_TRUE(batch(store, kStart + 3 * kSync).empty());  // nothing more to say while idle
  // The next requests use the standby lease, then ask for more.
  EXPECT_EQ(admitted(store, p, kStart + 3 * kSync, 60), 50);
  auto again = batch(store, kStart + 4 * kSync);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].op, Op::Update);
  EXPECT_EQ(again[0].delta, 50);
}

TEST(SyncStore, TheStandbyLeaseIsAtLeastTheTrustShare) {
  SyncStore store;
  const Params p = windowParams(1000, 2 * kSync);  // trust share 500; a tenth of the share: 100
  admitted(store, p, kStart, 1);
  syncOnce(store, kStart + kSync / 2, 400);
  auto items = batch(store, kStart + 3 * kSync / 2);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].standby, 500);
}

TEST(SyncStore, AfterAnOutageEachGatewayStaysWithinItsShareForAWhile) {
  SyncStore store;
  store.setFleetSize(2);
  const Params p = windowParams(40);
  store.setRedisDown(true);
  EXPECT_EQ(admitted(store, p, kStart, 30), 20);
  store.setRedisDown(false);
  store.capToOwnShareUntil(kStart + 3 * kSecond);
  store.setFleetSize(1);  // the other gateway has not synced again yet
  // Redis, not knowing what the other gateway admitted meanwhile, leases all that it sees.
  syncOnce(store, kStart + kSync, 20, 20);
  EXPECT_EQ(admitted(store, p, kStart + kSync, 20), 0);
  // Once the others have reported, leases are trusted again.
  syncOnce(store, kStart + 3 * kSecond, 5, 35);
  EXPECT_EQ(admitted(store, p, kStart + 3 * kSecond, 20), 5);
}

TEST(SyncStore, AFailedSyncSendsItsAdmissionsAgain) {
  SyncStore store;
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 6);
  auto items = batch(store, kStart + kSync);
  ASSERT_EQ(items.size(), 1u);
  admitted(store, p, kStart + kSync, 2);
  store.applyFailure(items[0]);
  // Due again at once, with everything admitted so far.
  auto retry = batch(store, kStart + kSync + kMs);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].delta, 8);
}

TEST(SyncStore, WithRedisDownEachGatewayAdmitsItsShareOfTheWindow) {
  SyncStore store;
  store.setFleetSize(4);
  store.setRedisDown(true);
  const Params p = windowParams(100);
  EXPECT_EQ(admitted(store, p, kStart, 60), 25);
  Decision refused = store.take("k", p, kSync, kStart + kSecond);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_ns, 9 * kSecond);  // the window's end
  EXPECT_EQ(admitted(store, p, kStart + 10 * kSecond, 60), 25);  // the next window
  // What it admitted is kept for Redis.
  auto items = batch(store, kStart + 10 * kSecond + kSync);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].delta, 25);
}

TEST(SyncStore, TheShareCountsWhatWasAdmittedBeforeRedisWentDown) {
  SyncStore store;
  store.setFleetSize(2);
  const Params p = windowParams(100);
  admitted(store, p, kStart, 1);
  syncOnce(store, kStart + kSync, 30);
  EXPECT_EQ(admitted(store, p, kStart + kSync, 30), 30);
  store.setRedisDown(true);
  EXPECT_EQ(admitted(store, p, kStart + 2 * kSync, 50), 50 - 31);
}

TEST(SyncStore, ANewWindowStartsWithTheTrustShareAndIgnoresOldAnswers) {
  SyncStore store;
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 10);
  auto items = batch(store, kStart + 9 * kSecond);
  ASSERT_EQ(items.size(), 1u);
  const int64_t next = kStart + 10 * kSecond;
  EXPECT_EQ(admitted(store, p, next, 15), 10);
  store.applyAnswer(items[0], {10, 0, 990, 500});  // for the window that ended
  EXPECT_EQ(admitted(store, p, next, 5), 0);
  auto fresh = batch(store, next + kSync);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].window_start_ns, next);
  EXPECT_EQ(fresh[0].delta, 10);
}

TEST(SyncStore, SlidingWindowsSendTheEndedWindowsLastAdmissionsAndAWeight) {
  SyncStore store;
  const Params p = windowParams(1000, 10 * kSecond, Algorithm::SlidingWindow);
  admitted(store, p, kStart + 9 * kSecond, 10);
  const int64_t now = kStart + 12 * kSecond;  // 2 s into the next window
  auto items = batch(store, now);
  ASSERT_EQ(items.size(), 1u);  // nothing happened in the new window yet
  EXPECT_EQ(items[0].op, Op::Add);
  EXPECT_EQ(items[0].window_start_ns, kStart);
  EXPECT_EQ(items[0].delta, 10);
  admitted(store, p, now, 1);
  auto update = batch(store, now + kSync);
  ASSERT_EQ(update.size(), 1u);
  EXPECT_EQ(update[0].op, Op::Update);
  EXPECT_EQ(update[0].weight_ppm, 790'000u);  // 7.9 s of the 10 s still count
}

TEST(SyncStore, HeadersReportTheFleetsCountAsLastHeard) {
  SyncStore store;
  const Params p = windowParams(100);
  admitted(store, p, kStart, 1);
  syncOnce(store, kStart + kSync, 5, 90);  // the fleet has counted 90
  Decision d = store.take("k", p, kSync, kStart + kSync);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 9u);
  EXPECT_EQ(d.reset_ns, 10 * kSecond - kSync);
}

TEST(SyncStore, GivingBackReturnsTheRequestToTheLease) {
  SyncStore store;
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 1);
  syncOnce(store, kStart + kSync, 2);
  EXPECT_EQ(admitted(store, p, kStart + kSync, 2), 2);
  store.giveBack("k");
  EXPECT_EQ(admitted(store, p, kStart + kSync, 2), 1);
  auto items = batch(store, kStart + 2 * kSync);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].delta, 2);
}

TEST(SyncStore, SweepForgetsEndedWindowsButNotKeysInFlight) {
  SyncStore store;
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 1);
  auto items = batch(store, kStart + kSync);
  ASSERT_EQ(items.size(), 1u);
  store.sweep(kStart + 30 * kSecond);  // the answer has not come yet
  EXPECT_EQ(store.size(), 1u);
  store.applyAnswer(items[0], {1, 0, 999, 999});
  auto idle = batch(store, kStart + 2 * kSync);
  ASSERT_EQ(idle.size(), 1u);
  store.applyAnswer(idle[0], {1, 0, 0, 10});
  store.sweep(kStart + 19 * kSecond);  // the window's count still weighs on the next one
  EXPECT_EQ(store.size(), 1u);
  store.sweep(kStart + 20 * kSecond);
  EXPECT_EQ(store.size(), 0u);
}

TEST(SyncStore, ClearingStartsEveryKeyAfresh) {
  SyncStore store;
  const Params p = windowParams(1000);
  admitted(store, p, kStart, 1);
  syncOnce(store, kStart + kSync, 0);  // no room left in the old Redis
  store.clear();
  EXPECT_EQ(store.size(), 0u);
  EXPECT_TRUE(batch(store, kStart + 2 * kSync).empty());
  EXPECT_EQ(admitted(store, p, kStart + 2 * kSync, 20), 10);  // the trust share again
}

TEST(SyncStore, ALeaseIsExactAcrossThreads) {
  SyncStore store;
  const Params p = windowParams(100'000);
  admitted(store, p, kStart, 1);
  syncOnce(store, kStart + kSync, 5'000);
  std::atomic<int> total{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] { total += admitted(store, p, kStart + kSync, 2'000); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(total.load(), 5'000);
}

}  // namespace
}  // namespace portico::ratelimit
