#pragma once
// Memory for one request's objects (its filters): made in blocks, destroyed together when the
// request ends. The first block is kept for the next request, so a request that fits in it
// allocates nothing; the rest go back when the arena is reset.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace portico {

class Arena {
 public:
  explicit Arena(size_t first_block = 1024) : first_size_(first_block) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() { reset(); }

  template <typename T, typename... Args>
  T& make(Args&&... args) {
    void* memory = allocate(sizeof(T), alignof(T));
    T* object = new (memory) T(std::forward<Args>(args)...);
    if constexpr (!std::is_trivially_destructible_v<T>) {
      destructors_.push_back({[](void* p) { std::destroy_at(static_cast<T*>(p)); }, object});
    }
    return *object;
  }

  // `count` value-initialized elements of a trivially destructible type.
  template <typename T>
  std::span<T> array(size_t count) {
    static_assert(std::is_trivially_destructible_v<T>);
    if (count == 0) return {};
    T* first = new (allocate(sizeof(T) * count, alignof(T))) T[count]();
    return {first, count};
  }

  // Destroys every object made, newest first; keeps the first block.
  void reset() {
    for (auto it = destructors_.rbegin(); it != destructors_.rend(); ++it) it->destroy(it->object);
    destructors_.clear();
    if (blocks_.size() > 1) blocks_.resize(1);
    used_ = 0;
  }
  size_t blockCount() const { return blocks_.size(); }

 private:
  struct Block {
    std::unique_ptr<std::byte[]> bytes;
    size_t size = 0;
  };
  struct Destructor {
    void (*destroy)(void*);
    void* object;
  };

  void* allocate(size_t size, size_t align) {
    size_t offset = (used_ + align - 1) & ~(align - 1);
    if (blocks_.empty() || offset + size > blocks_.back().size) {
      size_t block =
          std::max(blocks_.empty() ? first_size_ : blocks_.back().size * 2, size + align);
      blocks_.push_back({std::make_unique<std::byte[]>(block), block});
      offset = 0;
      // make_unique<std::byte[]> memory is aligned for any fundamental type.
    }
    used_ = offset + size;
    return blocks_.back().bytes.get() + offset;
  }

  size_t first_size_;
  std::vector<Block> blocks_;
  size_t used_ = 0;  // in the last block
  std::vector<Destructor> destructors_;
};

}  // namespace portico
