#include "upstream/upstream_health.hpp"

#include <algorithm>

namespace portico::upstream {
namespace {
constexpr uint32_t kMaxEjectionMultiple = 10;
}  // namespace

UpstreamHealth::UpstreamHealth(std::shared_ptr<UpstreamHealthState> state,
                               const std::vector<std::string>& endpoint_keys)
    : state_(std::move(state)) {
  for (const std::string& key : endpoint_keys) {
    auto& kept = state_->endpoints[key];
    if (!kept) kept = std::make_shared<EndpointHealth>();
    endpoints_.push_back(kept);
  }
}

void UpstreamHealth::recordOutcome(const config::OutlierDetection& settings, size_t index,
                                   bool failed, uint64_t now_ms) const {
  EndpointHealth& endpoint = *endpoints_[index];
  if (!failed) {
    // A store only when there is something to clear: most outcomes write nothing shared.
    if (endpoint.consecutive_failures.load(std::memory_order_relaxed) != 0) {
      endpoint.consecutive_failures.store(0, std::memory_order_relaxed);
    }
    return;
  }
  if (endpoint.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1 >=
      settings.consecutive_failures) {
    tryEject(settings, index, now_ms);
  }
}

void UpstreamHealth::tryEject(const config::OutlierDetection& settings, size_t index,
                              uint64_t now_ms) const {
  std::lock_guard lock(state_->ejection_mutex);
  EndpointHealth& endpoint = *endpoints_[index];
  if (endpoint.ejected(now_ms)) return;
  // At most half the endpoints out at once: ejecting more would push their load onto too few.
  const auto ejected = std::count_if(endpoints_.begin(), endpoints_.end(),
                                     [now_ms](const auto& e) { return e->ejected(now_ms); });
  if (static_cast<size_t>(ejected) + 1 > endpoints_.size() / 2) return;
  // Back in rotation for longer than its last ejection lasted: the series starts over.
  if (now_ms > endpoint.ejected_at_ms + 2 * endpoint.ejection_ms) endpoint.ejections = 0;
  endpoint.ejections = std::min(endpoint.ejections + 1, kMaxEjectionMultiple);
  endpoint.ejected_at_ms = now_ms;
  endpoint.ejection_ms = endpoint.ejections * static_cast<uint64_t>(settings.eject_for.count());
  endpoint.ejected_after = endpoint.consecutive_failures.exchange(0, std::memory_order_relaxed);
  endpoint.ejected_until_ms.store(now_ms + endpoint.ejection_ms, std::memory_order_relaxed);
}

std::string UpstreamHealth::ejectionReason(size_t index) const {
  std::lock_guard lock(state_->ejection_mutex);
  const EndpointHealth& endpoint = *endpoints_[index];
  return std::to_string(endpoint.ejected_after) + " consecutive failures (ejection " +
         std::to_string(endpoint.ejections) + " in a row, for " +
         std::to_string(endpoint.ejection_ms) + " ms)";
}

std::shared_ptr<UpstreamHealth> HealthRegistry::adopt(
    const std::string& upstream, const std::vector<std::string>& endpoint_keys) {
  auto& state = upstreams_[upstream];
  if (!state) state = std::make_shared<UpstreamHealthState>();
  return std::make_shared<UpstreamHealth>(state, endpoint_keys);
}

}  // namespace portico::upstream
