#pragma once
// A route's `max_body_bytes`: the most request body the route takes, instead of the listener's
// limit. The stream enforces it: a Content-Length over it is answered 413 before anything is
// forwarded, and a chunked body is cut with 413 as soon as a chunk announces more.

#include <cstdint>

#include "filters/filter.hpp"

namespace portico::filters {

class MaxBodyBytesFactory final : public FilterFactory {
 public:
  explicit MaxBodyBytesFactory(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  Filter& create(Arena& arena) const override;
  uint64_t maxBytes() const { return max_bytes_; }

 private:
  uint64_t max_bytes_;
};

class MaxBodyBytesFilter final : public Filter {
 public:
  explicit MaxBodyBytesFilter(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  FilterStatus onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) override;

 private:
  uint64_t max_bytes_;
};

}  // namespace portico::filters
