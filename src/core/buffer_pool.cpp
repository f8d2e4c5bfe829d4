#include "core/buffer_pool.hpp"

#include <malloc.h>

#include <vector>

namespace portico {
namespace {

constexpr size_t kMaxPooled = 64;               // buffers kept per thread
constexpr size_t kMaxPooledCapacity = 64 * 1024;  // larger ones are freed

// After a spike, what went back to the allocator still counts as resident until the allocator
// gives the pages back: it is asked to once this much was freed here.
constexpr size_t kTrimAfterBytes = 8 * 1024 * 1024;

thread_local std::vector<Buffer> t_pool;
thread_local size_t t_freed_bytes = 0;

void freed(size_t bytes) {
  t_freed_bytes += bytes;
  if (t_freed_bytes >= kTrimAfterBytes) {
    t_freed_bytes = 0;
    malloc_trim(0);
  }
}

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
  if (taken.capacity() == 0) return;
  if (taken.capacity() > kMaxPooledCapacity || t_pool.size() >= kMaxPooled) {
    const size_t bytes = taken.capacity();
    taken = Buffer();
    freed(bytes);
    return;
  }
  taken.clear();
  t_pool.push_back(std::move(taken));
}

}  // namespace portico
