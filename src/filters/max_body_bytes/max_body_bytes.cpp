#include "filters/max_body_bytes/max_body_bytes.hpp"

namespace portico::filters {

Filter& MaxBodyBytesFactory::create(Arena& arena) const {
  return arena.make<MaxBodyBytesFilter>(max_bytes_);
}

FilterStatus MaxBodyBytesFilter::onRequestHeaders(FilterCallbacks& stream, const RequestInfo&) {
  if (StreamEnvironment* env = stream.environment()) env->limitRequestBody(max_bytes_);
  return Continue;
}

}  // namespace portico::filters
