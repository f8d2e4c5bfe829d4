#include "core/siphash.hpp"

#include <random>

namespace portico {

const SipKey& processSipKey() {
  static const SipKey key = [] {
    std::random_device device;
    auto draw = [&] { return (static_cast<uint64_t>(device()) << 32) | device(); };
    return SipKey{draw(), draw()};
  }();
  return key;
}

}  // namespace portico
