#include "observability/metrics.hpp"

namespace portico::observability {
namespace {

// The series named `name` (its `key` field), made and indexed on first use. Writer only.
template <typename Entry, size_t kChunk>
Entry& findOrAppend(AppendOnly<Entry, kChunk>& series,
                    std::unordered_map<std::string, Entry*>& index, std::string Entry::*key,
                    std::string_view name) {
  auto it = index.find(std::string(name));
  if (it != index.end()) return *it->second;
  Entry& made = series.append([&](Entry& e) { (e.*key).assign(name); });
  index.emplace(std::string(name), &made);
  return made;
}

}  // namespace

void Histogram::observeUs(uint64_t us) {
  size_t i = 0;
  // Bounds in whole microseconds, compared without floating point.
  static constexpr std::array<uint64_t, kDurationBounds.size()> kBoundsUs = [] {
    std::array<uint64_t, kDurationBounds.size()> out{};
    for (size_t b = 0; b < out.size(); ++b) {
      out[b] = static_cast<uint64_t>(kDurationBounds[b] * 1'000'000 + 0.5);
    }
    return out;
  }();
  while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
  buckets_[i].add();
  sum_us_.add(us);
}

void NamedCounters::add(std::string_view label) {
  NamedCount* entry = entries_.find([&](const NamedCount& e) { return e.label == label; });
  if (entry == nullptr) {
    entry = &entries_.append([&](NamedCount& e) { e.label.assign(label); });
  }
  entry->count.add();
}

HttpMethod methodOf(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return HttpMethod::Get;
      if (m == "PUT") return HttpMethod::Put;
      break;
    case 4:
      if (m == "POST") return HttpMethod::Post;
      if (m == "HEAD") return HttpMethod::Head;
      break;
    case 5:
      if (m == "PATCH") return HttpMethod::Patch;
      if (m == "TRACE") return HttpMethod::Trace;
      break;
    case 6:
      if (m == "DELETE") return HttpMethod::Delete;
      break;
    case 7:
      if (m == "OPTIONS") return HttpMethod::Options;
      if (m == "CONNECT") return HttpMethod::Connect;
      break;
    default:
      break;
  }
  return HttpMethod::Other;
}

std::string_view methodLabel(HttpMethod method) {
  static constexpr std::string_view kLabels[kMethods] = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"};
  return kLabels[static_cast<size_t>(method)];
}

void RouteMetrics::countRequest(HttpMethod method, int status, uint64_t duration_us) {
  uint32_t key = static_cast<uint32_t>(method) << 16 | static_cast<uint32_t>(status);
  StatusCount* series = last;
  if (series == nullptr || series->key != key) {
    series = requests.find([key](const StatusCount& s) { return s.key == key; });
    if (series == nullptr) series = &requests.append([key](StatusCount& s) { s.key = key; });
    last = series;
  }
  series->count.add();
  duration.observeUs(duration_us);
}

std::string_view outcomeLabel(UpstreamOutcome outcome) {
  static constexpr std::string_view kLabels[kUpstreamOutcomes] = {
      "1xx", "2xx", "3xx", "4xx", "5xx", "connect_failure", "reset", "timeout", "cancelled"};
  return kLabels[static_cast<size_t>(outcome)];
}

UpstreamOutcome outcomeOfStatus(int status) {
  if (status < 200) return UpstreamOutcome::Status1xx;
  if (status < 300) return UpstreamOutcome::Status2xx;
  if (status < 400) return UpstreamOutcome::Status3xx;
  if (status < 500) return UpstreamOutcome::Status4xx;
  return UpstreamOutcome::Status5xx;
}

EndpointMetrics& UpstreamMetrics::endpoint(std::string_view address) {
  return findOrAppend(endpoints, by_address, &EndpointMetrics::address, address);
}

RouteMetrics& WorkerMetrics::route(std::string_view name) {
  return findOrAppend(routes_, route_index_, &RouteMetrics::name, name);
}

UpstreamMetrics& WorkerMetrics::upstream(std::string_view name) {
  return findOrAppend(upstreams_, upstream_index_, &UpstreamMetrics::name, name);
}

}  // namespace portico::observability
