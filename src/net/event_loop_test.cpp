#include "net/event_loop.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <thread>

namespace portico::net {
namespace {

class Counter : public Timed {
 public:
  explicit Counter(EventLoop& loop) : loop_(loop) {}
  void onTimer() override {
    ++fired;
    if (stop_on_fire) loop_.stop();
  }
  void recycle() { resetTimer(); }
  int fired = 0;
  bool stop_on_fire = true;

 private:
  EventLoop& loop_;
};

TEST(EventLoop, TimerFires) {
  EventLoop loop;
  Counter c(loop);
  loop.setTimeout(c, 20);
  loop.run();
  EXPECT_EQ(c.fired, 1);
}

TEST(EventLoop, MovingDeadlineLaterDelaysTheTimer) {
  EventLoop loop;
  Counter early(loop);
  Counter moved(loop);
  moved.stop_on_fire = false;
  loop.setTimeout(moved, 10);
  loop.setTimeout(moved, 200);  // later: the 10 ms entry must not fire it
  loop.setTimeout(early, 60);
  loop.run();
  EXPECT_EQ(early.fired, 1);
  EXPECT_EQ(moved.fired, 0);
}

TEST(EventLoop, ClearedAndRecycledTimersDoNotFire) {
  EventLoop loop;
  Counter cleared(loop);
  Counter recycled(loop);
  Counter last(loop);
  loop.setTimeout(cleared, 10);
  loop.clearTimeout(cleared);
  loop.setTimeout(recycled, 10);
  recycled.recycle();
  loop.setTimeout(last, 50);
  loop.run();
  EXPECT_EQ(cleared.fired, 0);
  EXPECT_EQ(recycled.fired, 0);
  EXPECT_EQ(last.fired, 1);
}

TEST(EventLoop, PostRunsOnTheLoopThread) {
  EventLoop loop;
  std::thread::id ran_on;
  std::thread poster([&] { loop.post([&] {
    ran_on = std::this_thread::get_id();
    loop.stop();
  }); });
  loop.run();
  poster.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoop, AForgottenTimerNeverFiresIntoAFreedObject) {
  EventLoop loop;
  auto doomed = std::make_unique<Counter>(loop);
  loop.setTimeout(*doomed, 10);
  Counter witness(loop);
  loop.setTimeout(witness, 40);
  loop.forget(*doomed);
  doomed.reset();  // under ASan, a heap entry left behind would read freed memory at 10 ms
  loop.run();
  EXPECT_EQ(witness.fired, 1);
}

}  // namespace
}  // namespace portico::net
