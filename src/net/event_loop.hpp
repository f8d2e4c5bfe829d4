#pragma once
// One epoll loop per thread. Sockets are registered once, edge-triggered, for both directions, so
// steady-state proxying makes no epoll_ctl calls. Timers are lazy deadlines kept in a min-heap
// (see Timed). Nothing here is thread-safe except post().

#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <vector>

namespace portico::net {

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  // Called with the epoll event mask (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP).
  virtual void onEvents(uint32_t events) = 0;
};

// Something with one deadline. Moving a deadline later costs nothing; the heap entry fires at the
// old time and is re-queued then. Objects that are recycled call resetTimer() so that heap entries
// left from their previous life are recognized as stale.
class Timed {
 public:
  virtual ~Timed() = default;
  virtual void onTimer() = 0;

 protected:
  void resetTimer() {
    ++timer_gen_;
    deadline_ = 0;
    scheduled_ = 0;
  }

 private:
  friend class EventLoop;
  uint64_t deadline_ = 0;   // ms on the monotonic clock; 0 = none
  uint64_t scheduled_ = 0;  // deadline of this object's live heap entry; 0 = none
  uint32_t timer_gen_ = 0;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Registers fd for EPOLLIN|EPOLLOUT|EPOLLRDHUP, edge-triggered. Returns false on failure.
  bool add(int fd, EventHandler* handler);
  // Registers fd level-triggered for EPOLLIN only (listening sockets, eventfds, signalfds).
  bool addReadable(int fd, EventHandler* handler);
  void remove(int fd);

  // Sets `t`'s deadline to now + after_ms (after_ms == 0 clears it).
  void setTimeout(Timed& t, uint64_t after_ms);
  // Sets `t`'s deadline to the absolute monotonic time at_ms (0 clears it).
  void setDeadline(Timed& t, uint64_t at_ms);
  void clearTimeout(Timed& t) { t.deadline_ = 0; }
  // Drops `t`'s entries from the timer heap: for an object that is freed rather than recycled,
  // whose entries would otherwise fire into freed memory. Linear in the number of timers.
  void forget(Timed& t);

  // Runs until stop(). `after_batch` runs after each batch of events (flushing buffered logs).
  void run();
  void stop() { running_ = false; }
  void setAfterBatch(std::function<void()> fn) { after_batch_ = std::move(fn); }

  // Thread-safe: queues fn to run on the loop's thread. For control messages, not requests.
  void post(std::function<void()> fn);

  // The time at the start of the current batch: one clock read per batch.
  uint64_t nowMs() const { return now_ms_; }

 private:
  class Wakeup;
  struct TimerEntry {
    uint64_t deadline;
    Timed* target;
    uint32_t gen;
    bool operator>(const TimerEntry& o) const { return deadline > o.deadline; }
  };

  void runTimers();
  int nextTimeoutMs() const;
  void drainPosted();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool running_ = false;
  uint64_t now_ms_ = 0;
  struct TimerHeap : std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> {
    void removeTarget(const Timed* target);
  };
  TimerHeap timers_;
  std::function<void()> after_batch_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<std::function<void()>> running_posted_;
};

}  // namespace portico::net
