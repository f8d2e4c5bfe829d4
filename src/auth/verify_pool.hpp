#pragma once
// A few threads for authentication checks too slow for a worker (password hashes, token
// introspection). Workers hand a job over and go on serving; the job posts its answer back to
// the worker's loop. The queue is bounded: when it is full the caller answers 503 at once.
//
// The queue is fair per client (review M5): each client (the caller's key, a peer address) has
// a queue of its own, served in turn, and may hold at most a share of the whole. A client that
// sends wrong passwords as fast as it can fills its own share and gets 503s; the others wait for
// at most one job of each other client ahead of them.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace portico::auth {

class VerifyPool {
 public:
  VerifyPool(size_t threads, size_t max_queue);
  ~VerifyPool();
  VerifyPool(const VerifyPool&) = delete;
  VerifyPool& operator=(const VerifyPool&) = delete;

  // Thread-safe. False when the queue, or this client's share of it, is full.
  bool submit(uint64_t client, std::function<void()> job);
  size_t maxPerClient() const { return max_per_client_; }

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::unordered_map<uint64_t, std::deque<std::function<void()>>> queues_;
  std::deque<uint64_t> turns_;  // clients with jobs queued, in the order they are served
  size_t queued_ = 0;
  size_t max_queue_;
  size_t max_per_client_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace portico::auth
