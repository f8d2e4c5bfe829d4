#pragma once
// Whether anybody still waits for work handed to another thread or to a later turn of the loop:
// the work checks the flag before it runs and before it reports back, and whoever waited drops
// it when it stops waiting (the request ended, the check timed out). Armed and dropped on the
// waiting side's thread.

#include <atomic>
#include <memory>

namespace portico {

class WaitFlag {
 public:
  WaitFlag() = default;
  WaitFlag(const WaitFlag&) = delete;
  WaitFlag& operator=(const WaitFlag&) = delete;
  ~WaitFlag() { drop(); }

  std::shared_ptr<const std::atomic<bool>> arm() {
    drop();
    flag_ = std::make_shared<std::atomic<bool>>(true);
    return flag_;
  }
  void drop() {
    if (flag_) flag_->store(false, std::memory_order_relaxed);
    flag_.reset();
  }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

}  // namespace portico
