#include "auth/verify_pool.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <vector>

namespace portico::auth {
namespace {

// One thread, held by a first job until released, so the order of the rest can be seen.
struct HeldPool {
  std::promise<void> release;
  std::promise<void> started;
  std::mutex mutex;
  std::vector<int> order;
  VerifyPool pool{1, 160};  // 10 per client; last, so its thread stops before the rest goes

  HeldPool() {
    std::shared_future<void> go = release.get_future().share();
    EXPECT_TRUE(pool.submit(0, [this, go] {
      started.set_value();
      go.wait();
    }));
    started.get_future().wait();  // off the queue, holding the only thread
  }
  bool add(uint64_t client, int tag) {
    return pool.submit(client, [this, tag] {
      std::lock_guard lock(mutex);
      order.push_back(tag);
    });
  }
  std::vector<int> finish(size_t expected) {
    release.set_value();
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mutex);
        if (order.size() == expected) return order;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::lock_guard lock(mutex);
    return order;
  }
};

// Review M5: a client with many checks queued does not make another wait behind all of them.
TEST(VerifyPool, ClientsAreServedInTurn) {
  HeldPool held;
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(held.add(1, 100 + i));  // the flood
  ASSERT_TRUE(held.add(2, 200));
  ASSERT_TRUE(held.add(3, 300));
  const std::vector<int> order = held.finish(10);
  ASSERT_EQ(order.size(), 10u);
  EXPECT_EQ(order[0], 100);
  EXPECT_EQ(order[1], 200);
  EXPECT_EQ(order[2], 300);
  for (int i = 3; i < 10; ++i) EXPECT_EQ(order[i], 100 + i - 2);  // each client's own in order
}

TEST(VerifyPool, OneClientFillsOnlyItsShare) {
  HeldPool held;
  EXPECT_EQ(held.pool.maxPerClient(), 10u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(held.add(1, i));
  EXPECT_FALSE(held.add(1, 10));  // its share is full: refused (503 at the caller)
  EXPECT_TRUE(held.add(2, 20));   // another client still gets in
  EXPECT_EQ(held.finish(11).size(), 11u);
  EXPECT_TRUE(held.add(1, 11));  // served: room again
}

TEST(VerifyPool, TheWholeQueueIsBounded) {
  VerifyPool pool(1, 32);  // 2 per client
  std::promise<void> release;
  std::promise<void> started;
  std::shared_future<void> go = release.get_future().share();
  ASSERT_TRUE(pool.submit(0, [go, &started] {
    started.set_value();
    go.wait();
  }));
  started.get_future().wait();  // off the queue, holding the only thread
  size_t accepted = 0;
  for (uint64_t client = 1; client < 100; ++client) accepted += pool.submit(client, [] {});
  EXPECT_EQ(accepted, 32u);
  release.set_value();
}

}  // namespace
}  // namespace portico::auth
