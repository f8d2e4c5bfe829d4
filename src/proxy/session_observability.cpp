// What a request leaves for observers: its trace context (read from the client or started here,
// sent upstream by buildUpstreamHead), its counters, and its span for the OTLP exporter.
// Tracing belongs to every request, routed or not, like the request id: it is not a route's
// filter.
#include <time.h>

#include <array>

#include "auth/authenticator.hpp"
#include "core/clock.hpp"
#include "core/hex.hpp"
#include "observability/otlp.hpp"
#include "observability/trace_context.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {

void Session::startTrace(bool fresh_request_id) {
  RequestState& rq = *rq_;
  rq.traced = true;
  // Two traceparent fields are one invalid value (W3C: a list is not allowed).
  const http::HeaderField* incoming = nullptr;
  bool repeated = false;
  for (const auto& h : rq.head.headers) {
    if (h.name.size() == 11 && http::equalsIgnoreCase(h.name, "traceparent")) {
      repeated = incoming != nullptr;
      incoming = &h;
    }
  }
  observability::TraceParent parent;
  if (incoming != nullptr && !repeated && observability::parseTraceParent(incoming->value, parent)) {
    rq.trace_has_parent = true;
    std::memcpy(rq.trace_id, parent.trace_id, sizeof rq.trace_id);
    std::memcpy(rq.trace_parent_id, parent.parent_id, sizeof rq.trace_parent_id);
    rq.trace_flags = parent.flags & 1;
  } else {
    static_assert(sizeof rq.trace_id == 32);
    if (fresh_request_id) {
      std::memcpy(rq.trace_id, rq.request_id, sizeof rq.trace_id);  // 128 bits, random
    } else {
      writeHex16(worker_.random(), rq.trace_id);
      writeHex16(worker_.random(), rq.trace_id + 16);
    }
    rq.trace_flags = worker_.sampleNewTrace() ? 1 : 0;
  }
  uint64_t span = worker_.random();
  writeHex16(span != 0 ? span : 1, rq.span_id);
}

void Session::recordMetrics() {
  RequestState& rq = *rq_;
  // A connection that sent part of a head and went is not a request.
  if (rq.method.empty() && rq.status == 0) return;
  const uint64_t now = rq.end_us != 0 ? rq.end_us : monotonicUs();
  const int status = rq.status != 0 ? rq.status : 499;  // cut before any answer
  observability::RouteMetrics& route =
      rq.snap != nullptr ? worker_.routeMetrics(*rq.snap, rq.route)
                         : worker_.routeMetrics(*worker_.current_, nullptr);
  route.countRequest(observability::methodOf(rq.method), status, now - rq.start_us);
  if (rq.upstream_start_us == 0 || rq.echo) return;
  using observability::UpstreamOutcome;
  UpstreamOutcome outcome = rq.upstream_failed   ? rq.upstream_failure
                            : rq.resp_head_done ? observability::outcomeOfStatus(rq.status)
                                                : UpstreamOutcome::Cancelled;
  if (rq.endpoint_metrics != nullptr) rq.endpoint_metrics->outcomes[static_cast<size_t>(outcome)].add();
  worker_.upstreamMetrics(*rq.snap, rq.upstream_index).duration.observeUs(now - rq.upstream_start_us);
}

void Session::countAuthFailure(std::string_view provider, std::string_view reason) {
  if (worker_.metrics() == nullptr || rq_->snap == nullptr) return;
  std::string label(provider);
  label += '\0';
  label += reason;
  worker_.routeMetrics(*rq_->snap, rq_->route).auth_failures.add(label);
}

void Session::countRateLimited(std::string_view key) {
  if (worker_.metrics() == nullptr || rq_->snap == nullptr) return;
  worker_.routeMetrics(*rq_->snap, rq_->route).rate_limited.add(key);
}

void Session::exportSpan() {
  RequestState& rq = *rq_;
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  const uint64_t now_us = monotonicUs();
  const uint64_t end_ns = static_cast<uint64_t>(wall.tv_sec) * 1'000'000'000u +
                          static_cast<uint64_t>(wall.tv_nsec);
  const uint64_t start_ns = end_ns - (now_us - rq.start_us) * 1000;
  std::string_view route = rq.route != nullptr ? std::string_view(rq.route->config->name) : "";
  std::string& name = worker_.spanScratch();
  name.assign(rq.method.empty() ? std::string_view("HTTP") : std::string_view(rq.method));
  if (!route.empty()) {
    name += ' ';
    name += route;
  }
  const int status = rq.status != 0 ? rq.status : 499;
  std::array<observability::SpanAttribute, 9> attributes;
  size_t count = 0;
  attributes[count++] = {"http.request.method", rq.method};
  attributes[count++] = {"url.path", rq.path};
  if (!route.empty()) attributes[count++] = {"http.route", route};
  attributes[count++] = {"http.response.status_code", {}, status, true};
  attributes[count++] = {"server.address", rq.host};
  attributes[count++] = {"client.address", std::string_view(peer_text_, peer_len_)};
  attributes[count++] = {"network.protocol.version", parent_ != nullptr ? "2" : "1.1"};
  if (rq.upstream_start_us != 0 && !rq.echo) {
    const config::Upstream& upstream = *rq.snap->shared->upstreams[rq.upstream_index].config;
    attributes[count++] = {"upstream.address", upstream.endpoints[rq.endpoint_index].text};
  }
  if (rq.authenticated && rq.identity && rq.identity->consumer != nullptr) {
    attributes[count++] = {"enduser.id", rq.identity->consumer->name};
  }
  observability::SpanData span;
  span.trace_id_hex = {rq.trace_id, sizeof rq.trace_id};
  span.span_id_hex = {rq.span_id, sizeof rq.span_id};
  if (rq.trace_has_parent) span.parent_id_hex = {rq.trace_parent_id, sizeof rq.trace_parent_id};
  span.name = name;
  span.start_unix_ns = start_ns;
  span.end_unix_ns = end_ns;
  span.attributes = {attributes.data(), count};
  span.error = status >= 500;
  std::string encoded;
  observability::appendSpan(encoded, span);
  worker_.addSpan(encoded);
}

}  // namespace portico::proxy
