#include "core/buffer_pool.hpp"

#include <vector>

namespace portico {
namespace {

constexpr size_t kMaxPooled = 64;               // buffers kept per thread
constexpr size_t kMaxPooledCapacity = 64 * 1024;  // larger ones are freed

thread_local std::vector<Buffer> t_pool;

}  // namespace

Buffer takeBuffer(size_t capacity) {
  for (size_t i = t_pool.size(); i-- > 0;) {
    if (t_pool[i].capacity() >= capacity) {
      Buffer buffer = std::move(t_pool[i]);
      t_pool[i] = std::move(t_pool.back());
      t_pool.pop_back();
      return buffer;
    }
  }
  return Buffer(capacity);
}

void giveBuffer(Buffer& buffer) {
  Buffer taken = std::move(buffer);
  buffer = Buffer();
  if (taken.capacity() == 0 || taken.capacity() > kMaxPooledCapacity ||
      t_pool.size() >= kMaxPooled) {
    return;  // freed here
  }
  taken.clear();
  t_pool.push_back(std::move(taken));
}

}  // namespace portico
