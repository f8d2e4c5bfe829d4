#pragma once
// Per-worker counters, summed when /metrics is scraped. Each WorkerMetrics is written by its
// worker's thread only, and read by the control thread while it is written: every counter is an
// atomic that its one writer updates with a relaxed load and store (a plain add, no lock prefix,
// no cache line shared with another writer). Labelled series are appended, never removed or
// moved, so a reader can walk them while the worker adds more: they outlive reloads.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace portico::observability {

class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Upper bounds in seconds: from under 1 ms to past 2 s, at most x2.5 apart, so that
// histogram_quantile gives a useful p50, p95 and p99 for an API's latencies.
inline constexpr std::array<double, 14> kDurationBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

class Histogram {
 public:
  static constexpr size_t kBuckets = kDurationBounds.size() + 1;  // the last: over every bound
  void observeUs(uint64_t us);
  uint64_t bucket(size_t i) const { return buckets_[i].value(); }  // not cumulative
  uint64_t sumUs() const { return sum_us_.value(); }

 private:
  std::array<Counter, kBuckets> buckets_;
  Counter sum_us_;
};

// Series appended by one writer and read by others as they come: fixed-size chunks linked
// through an atomic pointer, each with a published count.
template <typename Entry, size_t kChunk = 16>
class AppendOnly {
 public:
  AppendOnly() = default;
  AppendOnly(const AppendOnly&) = delete;
  AppendOnly& operator=(const AppendOnly&) = delete;

  // Writer only: a new entry, filled by `fill` before readers can see it.
  template <typename Fill>
  Entry& append(Fill&& fill) {
    Chunk* chunk = last_;
    size_t used = chunk->used.load(std::memory_order_relaxed);
    if (used == kChunk) {
      chunk->next_owned = std::make_unique<Chunk>();
      Chunk* next = chunk->next_owned.get();
      chunk->next.store(next, std::memory_order_release);
      last_ = chunk = next;
      used = 0;
    }
    Entry& entry = chunk->entries[used];
    fill(entry);
    chunk->used.store(used + 1, std::memory_order_release);
    return entry;
  }
  // Any thread: every entry published so far.
  template <typename Visit>
  void forEach(Visit&& visit) const {
    for (const Chunk* c = &first_; c != nullptr; c = c->next.load(std::memory_order_acquire)) {
      size_t used = c->used.load(std::memory_order_acquire);
      for (size_t i = 0; i < used; ++i) visit(c->entries[i]);
    }
  }
  // Writer only (it sees its own writes).
  template <typename Match>
  Entry* find(Match&& match) {
    for (Chunk* c = &first_; c != nullptr; c = c->next_owned.get()) {
      size_t used = c->used.load(std::memory_order_relaxed);
      for (size_t i = 0; i < used; ++i) {
        if (match(c->entries[i])) return &c->entries[i];
      }
    }
    return nullptr;
  }

 private:
  struct Chunk {
    std::array<Entry, kChunk> entries;
    std::atomic<size_t> used{0};
    std::atomic<Chunk*> next{nullptr};
    std::unique_ptr<Chunk> next_owned;
  };
  Chunk first_;
  Chunk* last_ = &first_;
};

struct NamedCount {
  std::string label;  // one or more label values, joined by '\0'
  Counter count;
};

// Counters keyed by a short string, found by a scan: for rare events (auth failures, refusals).
class NamedCounters {
 public:
  void add(std::string_view label);
  template <typename Visit>
  void forEach(Visit&& visit) const {
    entries_.forEach(visit);
  }

 private:
  AppendOnly<NamedCount, 4> entries_;
};

enum class HttpMethod : uint8_t { Get, Head, Post, Put, Delete, Patch, Options, Connect, Trace, Other };
inline constexpr size_t kMethods = 10;
HttpMethod methodOf(std::string_view method);
std::string_view methodLabel(HttpMethod method);

struct RouteMetrics {
  std::string name;
  // Requests by method and status, made on first use.
  struct StatusCount {
    uint32_t key = 0;  // method << 16 | status
    Counter count;
  };
  AppendOnly<StatusCount, 8> requests;
  StatusCount* last = nullptr;  // writer only: the series the previous request used
  Histogram duration;
  NamedCounters auth_failures;  // "provider\0reason"
  NamedCounters rate_limited;   // the limit's key

  void countRequest(HttpMethod method, int status, uint64_t duration_us);
};

enum class UpstreamOutcome : uint8_t {
  Status1xx,
  Status2xx,
  Status3xx,
  Status4xx,
  Status5xx,
  ConnectFailure,
  Reset,
  Timeout,
  Cancelled,
};
inline constexpr size_t kUpstreamOutcomes = 9;
std::string_view outcomeLabel(UpstreamOutcome outcome);
UpstreamOutcome outcomeOfStatus(int status);

struct EndpointMetrics {
  std::string address;  // "host:port" as configured
  std::array<Counter, kUpstreamOutcomes> outcomes;
  Gauge in_flight;
};

struct UpstreamMetrics {
  std::string name;
  AppendOnly<EndpointMetrics, 4> endpoints;
  Histogram duration;
  Counter retries_sent;
  Counter retries_refused;                                       // by the retry budget
  std::unordered_map<std::string, EndpointMetrics*> by_address;  // writer only

  EndpointMetrics& endpoint(std::string_view address);
};

// One worker's counters. Its worker finds series by name (slowly, once per snapshot) and keeps
// the pointers; the scraper walks them all. Aligned to cache lines, as are its gauges, so that
// no two workers ever write to one line.
class alignas(64) WorkerMetrics {
 public:
  explicit WorkerMetrics(size_t listeners) : connections_(listeners) {}
  RouteMetrics& route(std::string_view name);
  UpstreamMetrics& upstream(std::string_view name);
  Gauge& connections(size_t listener) { return connections_[listener].gauge; }

  template <typename Visit>
  void forEachRoute(Visit&& visit) const {
    routes_.forEach(visit);
  }
  template <typename Visit>
  void forEachUpstream(Visit&& visit) const {
    upstreams_.forEach(visit);
  }
  int64_t connectionsOf(size_t listener) const { return connections_[listener].gauge.value(); }

 private:
  AppendOnly<RouteMetrics, 8> routes_;
  AppendOnly<UpstreamMetrics, 4> upstreams_;
  std::unordered_map<std::string, RouteMetrics*> route_index_;
  std::unordered_map<std::string, UpstreamMetrics*> upstream_index_;
  struct alignas(64) LineGauge {
    Gauge gauge;
  };
  std::vector<LineGauge> connections_;  // [listener]
};

// The name under which requests that matched no route are counted.
inline constexpr std::string_view kNoRoute = "(none)";

}  // namespace portico::observability
