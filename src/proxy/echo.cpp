// The built-in `echo` upstream: answers with a JSON description of the request exactly as a
// real upstream would have received it (after rewrites and header rules), which makes it the
// quickstart's backend and a handy probe of routing config.
#include <cstdio>

#include "core/clock.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {
namespace {

constexpr size_t kMaxEchoedBody = 64 * 1024;

void appendJsonString(Buffer& out, std::string_view s) {
  out.append('"');
  http::appendJsonEscaped(s, out);
  out.append('"');
}

}  // namespace

bool Session::pumpEcho() {
  if (!rq_->req_body_done) {
    size_t before = in_.size();
    if (before == 0) return false;
    size_t take = 0;
    if (rq_->req_framing == http::BodyFraming::Length) {
      take = static_cast<size_t>(std::min<uint64_t>(before, rq_->req_remaining));
      size_t keep =
          std::min(take, kMaxEchoedBody - std::min(kMaxEchoedBody, rq_->echo_body.size()));
      rq_->echo_body.append(in_.data(), keep);
      rq_->req_remaining -= take;
      rq_->echo_body_bytes += take;
      rq_->req_body_done = rq_->req_remaining == 0;
    } else {
      std::string decoded;
      auto r = rq_->req_chunked.feed(in_.data(), before, &decoded);
      if (r.error) {
        replyError(http::ErrorCode::BadRequest, "malformed chunked request body", true);
        return true;
      }
      take = r.consumed;
      rq_->echo_body_bytes += decoded.size();
      size_t keep = std::min(decoded.size(),
                             kMaxEchoedBody - std::min(kMaxEchoedBody, rq_->echo_body.size()));
      rq_->echo_body.append(decoded, 0, keep);
      rq_->req_body_done = r.done;
      if (rq_->echo_body_bytes > rq_->max_body) {
        replyError(http::ErrorCode::PayloadTooLarge, "request body exceeds the size limit", true);
        return true;
      }
    }
    in_.consume(take);
    rq_->bytes_in += take;
    if (!rq_->req_body_done) return take > 0;
  }
  if (rq_->resp_head_done) return false;

  // The request as an upstream would have read it.
  http::RequestHead seen;
  http::ParseError error = http::ParseError::None;
  http::RequestLimits limits{rq_->upstream_head.size() + 1, rq_->upstream_head.size() + 1, 1024};
  if (http::parseRequestHead(rq_->upstream_head.data(), rq_->upstream_head.size(), limits, seen,
                             error) != http::ParseStatus::Complete) {
    replyError(http::ErrorCode::Internal, "echo could not read the forwarded request", true);
    return true;
  }
  Buffer body(1024 + rq_->echo_body.size());
  body.append("{\"method\":");
  appendJsonString(body, seen.method);
  body.append(",\"path\":");
  appendJsonString(body, seen.path);
  body.append(",\"query\":");
  appendJsonString(body, seen.query);
  body.append(",\"route\":");
  appendJsonString(body, rq_->route->config->name);
  body.append(",\"headers\":{");
  bool first = true;
  for (const auto& h : seen.headers) {
    if (!first) body.append(',');
    first = false;
    std::string lower(h.name);
    for (char& c : lower) c = http::asciiLower(c);
    appendJsonString(body, lower);
    body.append(':');
    appendJsonString(body, h.value);
  }
  body.append("},\"body_bytes\":");
  body.appendDecimal(rq_->echo_body_bytes);
  body.append(",\"body\":");
  appendJsonString(body, rq_->echo_body);
  body.append("}\n");

  Buffer raw(256);
  raw.append("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ");
  raw.appendDecimal(body.size());
  raw.append("\r\n\r\n");
  http::ResponseHead head;
  if (http::parseResponseHead(raw.data(), raw.size(), rq_->method, head, error) !=
      http::ParseStatus::Complete) {
    replyError(http::ErrorCode::Internal, "echo could not build its response", true);
    return true;
  }
  rq_->status = 200;
  if (worker_.draining()) close_after_response_ = true;
  buildClientResponseHead(head);
  if (rq_->method != "HEAD") out_.append(body.view());
  rq_->resp_head_done = true;
  rq_->resp_framing = http::BodyFraming::None;
  return true;
}

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
    appendJsonString(line, rq_->method);
    line.append(",\"path\":");
    appendJsonString(line, rq_->path);
    line.append(",\"route\":");
    appendJsonString(line, route);
    line.append(",\"upstream\":");
    appendJsonString(line, upstream_name);
    line.append(",\"endpoint\":");
    appendJsonString(line, endpoint);
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
