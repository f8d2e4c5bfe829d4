#pragma once
// Long-lived objects made in blocks, destroyed only with the slab. A worker's sessions live as
// long as the worker (they are reused, never freed): made one by one among short-lived I/O
// buffers, each would pin a page of freed memory once the buffers go back (measured by
// bench/idle-memory); in blocks they share pages with each other.

#include <cstddef>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace portico {

template <typename T, size_t kPerBlock = 64>
class Slab {
 public:
  Slab() = default;
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  ~Slab() {
    for (size_t b = 0; b < blocks_.size(); ++b) {
      const size_t count = b + 1 == blocks_.size() ? used_ : kPerBlock;
      for (size_t i = 0; i < count; ++i) std::destroy_at(at(b, i));
    }
  }

  template <typename... Args>
  T* make(Args&&... args) {
    if (blocks_.empty() || used_ == kPerBlock) {
      blocks_.push_back(std::make_unique<Block>());
      used_ = 0;
    }
    T* object = new (blocks_.back()->bytes + used_ * sizeof(T)) T(std::forward<Args>(args)...);
    ++used_;
    return object;
  }
  size_t size() const { return blocks_.empty() ? 0 : (blocks_.size() - 1) * kPerBlock + used_; }

 private:
  struct Block {
    alignas(T) std::byte bytes[sizeof(T) * kPerBlock];
  };
  T* at(size_t block, size_t i) {
    return std::launder(reinterpret_cast<T*>(blocks_[block]->bytes + i * sizeof(T)));
  }

  std::vector<std::unique_ptr<Block>> blocks_;
  size_t used_ = 0;  // objects made in the last block
};

}  // namespace portico
