#pragma once
// The workers' counters summed into one view (on the control thread, when scraped), and that view
// in Prometheus's text format 0.0.4 and in the admin API's JSON.

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "observability/metrics.hpp"

namespace portico::observability {

struct HistogramTotals {
  std::array<uint64_t, Histogram::kBuckets> buckets{};  // not cumulative
  uint64_t sum_us = 0;
  uint64_t count() const;
  void add(const Histogram& h);
};

struct MetricsView {
  struct Route {
    std::map<uint32_t, uint64_t> requests;  // method << 16 | status
    HistogramTotals duration;
    std::map<std::string, uint64_t> auth_failures;  // "provider\0reason"
    std::map<std::string, uint64_t> rate_limited;   // key
  };
  struct Endpoint {
    std::array<uint64_t, kUpstreamOutcomes> outcomes{};
    int64_t in_flight = 0;
    uint64_t requests() const;
    uint64_t failures() const;
  };
  struct Upstream {
    std::map<std::string, Endpoint> endpoints;
    HistogramTotals duration;
    uint64_t retries_sent = 0;
    uint64_t retries_refused = 0;
  };
  std::map<std::string, Route> routes;
  std::map<std::string, Upstream> upstreams;
  std::vector<int64_t> connections;  // [listener]
};

MetricsView collectMetrics(std::span<const WorkerMetrics* const> workers, size_t listeners);

// What the scrape shows beside the workers' counters.
struct ScrapeExtras {
  std::vector<std::string> listeners;  // names, by index
  std::vector<std::string> upstreams;  // of the config in force
  std::vector<int> circuit_states;     // [upstream]: 0 closed, 1 half-open, 2 open
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  uint64_t spans_exported = 0;
  uint64_t spans_dropped = 0;
  uint64_t spans_failed = 0;
  double start_time_seconds = 0;  // unix time the process started
  bool counting = true;  // metrics.enabled: without it, only the process and reload metrics
};

std::string renderPrometheus(const MetricsView& view, const ScrapeExtras& extras);


}  // namespace portico::observability
