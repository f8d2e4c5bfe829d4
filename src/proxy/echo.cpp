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
  if (!req_body_done_) {
    size_t before = in_.size();
    if (before == 0) return false;
    size_t take = 0;
    if (req_framing_ == http::BodyFraming::Length) {
      take = static_cast<size_t>(std::min<uint64_t>(before, req_remaining_));
      size_t keep = std::min(take, kMaxEchoedBody - std::min(kMaxEchoedBody, echo_body_.size()));
      echo_body_.append(in_.data(), keep);
      req_remaining_ -= take;
      echo_body_bytes_ += take;
      req_body_done_ = req_remaining_ == 0;
    } else {
      std::string decoded;
      auto r = req_chunked_.feed(in_.data(), before, &decoded);
      if (r.error) {
        replyError(http::ErrorCode::BadRequest, "malformed chunked request body", true);
        return true;
      }
      take = r.consumed;
      echo_body_bytes_ += decoded.size();
      size_t keep = std::min(decoded.size(),
                             kMaxEchoedBody - std::min(kMaxEchoedBody, echo_body_.size()));
      echo_body_.append(decoded, 0, keep);
      req_body_done_ = r.done;
      if (echo_body_bytes_ > max_body_) {
        replyError(http::ErrorCode::PayloadTooLarge, "request body exceeds the size limit", true);
        return true;
      }
    }
    in_.consume(take);
    bytes_in_ += take;
    if (!req_body_done_) return take > 0;
  }
  if (resp_head_done_) return false;

  // The request as an upstream would have read it.
  http::RequestHead seen;
  http::ParseError error = http::ParseError::None;
  http::RequestLimits limits{upstream_head_.size() + 1, upstream_head_.size() + 1, 1024};
  if (http::parseRequestHead(upstream_head_.data(), upstream_head_.size(), limits, seen, error) !=
      http::ParseStatus::Complete) {
    replyError(http::ErrorCode::Internal, "echo could not read the forwarded request", true);
    return true;
  }
  Buffer body(1024 + echo_body_.size());
  body.append("{\"method\":");
  appendJsonString(body, seen.method);
  body.append(",\"path\":");
  appendJsonString(body, seen.path);
  body.append(",\"query\":");
  appendJsonString(body, seen.query);
  body.append(",\"route\":");
  appendJsonString(body, route_->config->name);
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
  body.appendDecimal(echo_body_bytes_);
  body.append(",\"body\":");
  appendJsonString(body, echo_body_);
  body.append("}\n");

  Buffer raw(256);
  raw.append("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ");
  raw.appendDecimal(body.size());
  raw.append("\r\n\r\n");
  http::ResponseHead head;
  if (http::parseResponseHead(raw.data(), raw.size(), method_, head, error) !=
      http::ParseStatus::Complete) {
    replyError(http::ErrorCode::Internal, "echo could not build its response", true);
    return true;
  }
  status_ = 200;
  if (worker_.draining()) close_after_response_ = true;
  buildClientResponseHead(head);
  if (method_ != "HEAD") out_.append(body.view());
  resp_head_done_ = true;
  resp_framing_ = http::BodyFraming::None;
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
  std::string_view route = route_ != nullptr ? std::string_view(route_->config->name) : "";
  std::string endpoint;
  if (route_ != nullptr && !echo_ && upstream_start_us_ != 0) {
    endpoint = snap_->shared->upstreams[upstream_index_].endpoint_keys[endpoint_index_];
  }
  double total_ms = static_cast<double>(end_us - start_us_) / 1000.0;
  double upstream_ms = upstream_head_us_ > upstream_start_us_ && upstream_start_us_ != 0
                           ? static_cast<double>(upstream_head_us_ - upstream_start_us_) / 1000.0
                           : 0.0;
  Buffer line(512);
  char num[64];
  if (sink->json()) {
    line.append("{\"time\":\"");
    line.append(time);
    line.append("\",\"request_id\":\"");
    line.append(std::string_view(request_id_, request_id_len_));
    line.append("\",\"client\":\"");
    line.append(std::string_view(peer_text_, peer_len_));
    line.append("\",\"method\":");
    appendJsonString(line, method_);
    line.append(",\"path\":");
    appendJsonString(line, path_);
    line.append(",\"route\":");
    appendJsonString(line, route);
    line.append(",\"upstream\":");
    appendJsonString(line, route_ != nullptr
                               ? std::string_view(
                                     snap_->shared->upstreams[upstream_index_].config->name)
                               : std::string_view());
    line.append(",\"endpoint\":");
    appendJsonString(line, endpoint);
    line.append(",\"status\":");
    line.appendDecimal(static_cast<uint64_t>(status_));
    line.append(",\"bytes_in\":");
    line.appendDecimal(bytes_in_);
    line.append(",\"bytes_out\":");
    line.appendDecimal(bytes_out_);
    int n = std::snprintf(num, sizeof num, ",\"duration_ms\":%.3f,\"upstream_ms\":%.3f}\n",
                          total_ms, upstream_ms);
    line.append(std::string_view(num, static_cast<size_t>(n)));
  } else {
    line.append(time);
    line.append(' ');
    line.append(std::string_view(peer_text_, peer_len_));
    line.append(" \"");
    line.append(method_);
    line.append(' ');
    line.append(path_);
    line.append("\" ");
    line.appendDecimal(static_cast<uint64_t>(status_));
    line.append(' ');
    line.appendDecimal(bytes_out_);
    int n = std::snprintf(num, sizeof num, " %.3fms ", total_ms);
    line.append(std::string_view(num, static_cast<size_t>(n)));
    line.append(route.empty() ? std::string_view("-") : route);
    line.append(' ');
    line.append(std::string_view(request_id_, request_id_len_));
    line.append('\n');
  }
  worker_.accessLogBuffer().append(line.view());
}

}  // namespace portico::proxy
