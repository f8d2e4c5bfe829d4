#include "auth/verify_pool.hpp"

#include <algorithm>

namespace portico::auth {

VerifyPool::VerifyPool(size_t threads, size_t max_queue)
    : max_queue_(max_queue), max_per_client_(std::max<size_t>(1, max_queue / 16)) {
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

VerifyPool::~VerifyPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queues_.clear();  // their requests are being cut anyway
    turns_.clear();
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

bool VerifyPool::submit(uint64_t client, std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queued_ >= max_queue_) return false;
    auto& queue = queues_[client];
    if (queue.size() >= max_per_client_) return false;
    if (queue.empty()) turns_.push_back(client);
    queue.push_back(std::move(job));
    ++queued_;
  }
  wake_.notify_one();
  return true;
}

void VerifyPool::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || queued_ > 0; });
      if (stopping_) return;
      const uint64_t client = turns_.front();
      turns_.pop_front();
      auto it = queues_.find(client);
      job = std::move(it->second.front());
      it->second.pop_front();
      --queued_;
      if (it->second.empty()) {
        queues_.erase(it);
      } else {
        turns_.push_back(client);  // its next job waits for one of each other client's
      }
    }
    job();
  }
}

}  // namespace portico::auth
