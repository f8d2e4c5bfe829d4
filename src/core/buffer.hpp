#pragma once
// A byte buffer with a read cursor and a write cursor. Connections take theirs from a per-thread
// pool while they have bytes to hold and give them back when idle (core/buffer_pool.hpp), so the
// steady state allocates nothing and an idle connection holds no buffer.

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace portico {

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t capacity) { reserve(capacity); }
  // A moved-from buffer is empty and owns nothing.
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    data_ = std::move(other.data_);
    capacity_ = std::exchange(other.capacity_, 0);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
    return *this;
  }

  // Grows the allocation to at least `capacity`, keeping the readable bytes.
  void reserve(size_t capacity) {
    if (capacity <= capacity_) return;
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    size_t n = size();
    if (n) std::memcpy(bigger.get(), data(), n);
    data_ = std::move(bigger);
    capacity_ = capacity;
    begin_ = 0;
    end_ = n;
  }

  const char* data() const { return data_.get() + begin_; }
  char* data() { return data_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::string_view view() const { return {data(), size()}; }
  size_t capacity() const { return capacity_; }

  // Writable space after the data; call compact() first to reclaim consumed bytes.
  char* writePtr() { return data_.get() + end_; }
  size_t writable() const { return capacity_ - end_; }
  void commit(size_t n) { end_ += n; }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  // Removes `n` readable bytes starting `offset` bytes into the data.
  void erase(size_t offset, size_t n) {
    char* at = data() + offset;
    std::memmove(at, at + n, size() - offset - n);
    end_ -= n;
  }
  // Moves the unread bytes to the front.
  void compact() {
    if (begin_ == 0) return;
    size_t n = size();
    if (n) std::memmove(data_.get(), data(), n);
    begin_ = 0;
    end_ = n;
  }

  void append(std::string_view s) {
    if (s.empty()) return;  // an empty view may hold a null pointer: no memcpy with it
    if (s.size() > writable()) makeRoom(s.size());
    std::memcpy(writePtr(), s.data(), s.size());
    end_ += s.size();
  }
  void append(char c) { append(std::string_view(&c, 1)); }
  // Takes n more bytes at the end and returns where they start: the caller writes all n.
  char* extend(size_t n) {
    if (n > writable()) makeRoom(n);
    char* p = writePtr();
    end_ += n;
    return p;
  }
  // Gives back the last `n` bytes taken by extend() and not written.
  void truncateEnd(size_t n) { end_ -= n; }
  void appendDecimal(uint64_t v) {
    char tmp[24];
    char* p = tmp + sizeof tmp;
    do {
      *--p = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    append(std::string_view(p, static_cast<size_t>(tmp + sizeof tmp - p)));
  }

 private:
  // Out of line: the rare path, and it keeps GCC 12 from a false -Wstringop-overflow when it
  // inlines append() into a function with a small buffer.
  [[gnu::noinline]] void makeRoom(size_t n) {
    compact();
    if (n > writable()) reserve((size() + n) * 2);
  }

  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace portico
