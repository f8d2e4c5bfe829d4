// The built-in `echo` upstream: answers with a JSON description of the request exactly as a
// real upstream would have received it (after rewrites and header rules), which makes it the
// quickstart's backend and a handy probe of routing config.
#include "http/local_reply.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {
namespace {

constexpr size_t kMaxEchoedBody = 64 * 1024;

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
  http::appendJsonString(seen.method, body);
  body.append(",\"path\":");
  http::appendJsonString(seen.path, body);
  body.append(",\"query\":");
  http::appendJsonString(seen.query, body);
  body.append(",\"route\":");
  http::appendJsonString(rq_->route->config->name, body);
  body.append(",\"headers\":{");
  bool first = true;
  for (const auto& h : seen.headers) {
    if (!first) body.append(',');
    first = false;
    std::string lower(h.name);
    for (char& c : lower) c = http::asciiLower(c);
    http::appendJsonString(lower, body);
    body.append(':');
    http::appendJsonString(h.value, body);
  }
  body.append("},\"body_bytes\":");
  body.appendDecimal(rq_->echo_body_bytes);
  body.append(",\"body\":");
  http::appendJsonString(rq_->echo_body, body);
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
  if (state_ == State::Closed) return true;  // the stream could not take the head
  if (rq_->method != "HEAD") out_.append(body.view());
  rq_->resp_head_done = true;
  rq_->resp_framing = http::BodyFraming::None;
  return true;
}

}  // namespace portico::proxy
