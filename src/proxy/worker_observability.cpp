// A worker's metric series and its batch of spans for export.
#include "observability/otlp.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {

void Worker::applyObservability(const config::Config& config) {
  metrics_ = config.metrics.enabled ? metrics_storage_ : nullptr;
  exports_spans_ = span_exporter_ != nullptr && !config.tracing.otlp_endpoint.empty();
  const double sample = config.tracing.sample;
  trace_sample_threshold_ = sample <= 0    ? 0
                            : sample >= 1 ? UINT64_MAX
                                          : static_cast<uint64_t>(sample * 18446744073709551616.0);
}

observability::RouteMetrics& Worker::routeMetrics(WorkerSnapshot& snap, const RouteRuntime* route) {
  if (route == nullptr) {
    if (no_route_metrics_ == nullptr) no_route_metrics_ = &metrics_storage_->route(observability::kNoRoute);
    return *no_route_metrics_;
  }
  size_t index = static_cast<size_t>(route - snap.shared->routes.data());
  observability::RouteMetrics*& series = snap.route_metrics[index];
  if (series == nullptr) series = &metrics_storage_->route(route->config->name);
  return *series;
}

observability::UpstreamMetrics& Worker::upstreamMetrics(WorkerSnapshot& snap, uint32_t upstream) {
  observability::UpstreamMetrics*& series = snap.upstream_metrics[upstream];
  if (series == nullptr) {
    series = &metrics_storage_->upstream(snap.shared->upstreams[upstream].config->name);
  }
  return *series;
}

observability::EndpointMetrics& Worker::endpointMetrics(WorkerSnapshot& snap, uint32_t upstream,
                                                        uint32_t endpoint) {
  auto& endpoints = snap.endpoint_metrics[upstream];
  if (endpoints.empty()) {
    endpoints.assign(snap.shared->upstreams[upstream].addresses.size(), nullptr);
  }
  observability::EndpointMetrics*& series = endpoints[endpoint];
  if (series == nullptr) {
    const config::Upstream& config = *snap.shared->upstreams[upstream].config;
    series = &upstreamMetrics(snap, upstream).endpoint(config.endpoints[endpoint].text);
  }
  return *series;
}

void Worker::flushSpans() {
  if (span_count_ == 0) return;
  span_exporter_->submit(span_buffer_, span_count_);
  span_buffer_.clear();
  span_count_ = 0;
}

}  // namespace portico::proxy
