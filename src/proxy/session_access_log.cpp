// The access log line of a request, written when its exchange ends (however it ends): JSON or
// the text format, into the worker's buffer, flushed once per event-loop batch.
#include <cstdio>

#include "core/clock.hpp"
#include "http/local_reply.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {

void Session::writeAccessLog() {
  observability::AccessLogSink* sink = worker_.accessLog();
  if (sink == nullptr || !sink->enabled()) return;
  if (sink->sample() < 1.0 &&
      static_cast<double>(worker_.random() % 1'000'000) >= sink->sample() * 1'000'000) {
    return;
  }
  uint64_t end_us = monotonicUs();
  char time[64];
  observability::formatUtcNow(time);
  const RequestState& rq = *rq_;
  std::string_view route = rq.route != nullptr ? std::string_view(rq.route->config->name) : "";
  // Only what this request reached is named: a request refused before dispatch has no upstream.
  const UpstreamRuntime* upstream =
      rq.upstream_chosen ? &rq.snap->shared->upstreams[rq.upstream_index] : nullptr;
  std::string_view upstream_name =
      upstream != nullptr ? std::string_view(upstream->config->name) : std::string_view();
  std::string_view endpoint;
  if (upstream != nullptr && !rq.echo && rq.upstream_start_us != 0) {
    endpoint = upstream->endpoint_keys[rq.endpoint_index];
    endpoint = endpoint.substr(0, endpoint.find(' '));  // the address, not the pool's suffixes
  }
  double total_ms = static_cast<double>(end_us - rq_->start_us) / 1000.0;
  double upstream_ms =
      rq_->upstream_head_us > rq_->upstream_start_us && rq_->upstream_start_us != 0
          ? static_cast<double>(rq_->upstream_head_us - rq_->upstream_start_us) / 1000.0
          : 0.0;
  Buffer line(512);
  char num[64];
  if (sink->json()) {
    line.append("{\"time\":\"");
    line.append(time);
    line.append("\",\"request_id\":\"");
    line.append(std::string_view(rq_->request_id, rq_->request_id_len));
    line.append("\",\"client\":\"");
    line.append(std::string_view(peer_text_, peer_len_));
    line.append("\",\"method\":");
    http::appendJsonString(rq_->method, line);
    line.append(",\"path\":");
    http::appendJsonString(rq_->path, line);
    line.append(",\"route\":");
    http::appendJsonString(route, line);
    line.append(",\"upstream\":");
    http::appendJsonString(upstream_name, line);
    line.append(",\"endpoint\":");
    http::appendJsonString(endpoint, line);
    line.append(",\"status\":");
    line.appendDecimal(static_cast<uint64_t>(rq_->status));
    line.append(",\"bytes_in\":");
    line.appendDecimal(rq_->bytes_in);
    line.append(",\"bytes_out\":");
    line.appendDecimal(rq_->bytes_out);
    int n = std::snprintf(num, sizeof num, ",\"duration_ms\":%.3f,\"upstream_ms\":%.3f}\n",
                          total_ms, upstream_ms);
    line.append(std::string_view(num, static_cast<size_t>(n)));
  } else {
    line.append(time);
    line.append(' ');
    line.append(std::string_view(peer_text_, peer_len_));
    line.append(" \"");
    line.append(rq_->method);
    line.append(' ');
    line.append(rq_->path);
    line.append("\" ");
    line.appendDecimal(static_cast<uint64_t>(rq_->status));
    line.append(' ');
    line.appendDecimal(rq_->bytes_out);
    int n = std::snprintf(num, sizeof num, " %.3fms ", total_ms);
    line.append(std::string_view(num, static_cast<size_t>(n)));
    line.append(route.empty() ? std::string_view("-") : route);
    line.append(' ');
    line.append(std::string_view(rq_->request_id, rq_->request_id_len));
    line.append('\n');
  }
  worker_.accessLogBuffer().append(line.view());
}

}  // namespace portico::proxy
