#pragma once
// A few threads for authentication checks too slow for a worker (password hashes, token
// introspection). Workers hand a job over and go on serving; the job posts its answer back to
// the worker's loop. The queue is bounded: when it is full the caller answers 503 at once.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace portico::auth {

class VerifyPool {
 public:
  VerifyPool(size_t threads, size_t max_queue);
  ~VerifyPool();
  VerifyPool(const VerifyPool&) = delete;
  VerifyPool& operator=(const VerifyPool&) = delete;

  // Thread-safe. False when the queue is full.
  bool submit(std::function<void()> job);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  size_t max_queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace portico::auth
