// The gateway's own answers: errors (SPEC §4's JSON, or gRPC's trailers-only answer for a gRPC
// request) and bodiless replies, each through the route's filters' response phase.
#include <algorithm>

#include "proxy/http2_connection.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "transcode/grpc_call.hpp"

namespace portico::proxy {

void Session::noteGrpc() {
  RequestState& rq = *rq_;
  const http::HeaderField* type = http::findHeader(rq.head.headers, "content-type");
  rq.grpc = type != nullptr && http::isGrpcContentType(type->value);
  if (!rq.grpc) return;
  if (transcode::isGrpcWebContentType(type->value)) {
    rq.grpc_reply_type = transcode::isGrpcWebTextContentType(type->value)
                             ? "application/grpc-web-text+proto"
                             : "application/grpc-web+proto";
  }
  const http::HeaderField* timeout = http::findHeader(rq.head.headers, "grpc-timeout");
  if (timeout == nullptr) return;
  if (auto ms = http::parseGrpcTimeoutMs(timeout->value)) {
    rq.grpc_deadline_ms = worker_.loop().nowMs() + std::max<uint64_t>(*ms, 1);
  }
}

void Session::replyError(http::ErrorCode code, std::string_view message, bool close,
                         std::string_view allow, std::string_view www_authenticate) {
  if (!rq_) beginRequest();  // an error before any byte of a request (a timer)
  if (rq_->request_id_len == 0) {  // failed before the request's own id was known
    worker_.newRequestId(rq_->request_id);
    rq_->request_id_len = 32;
  }
  if (state_ == State::FilterWait) {
    // The paused filter is not waited for: a late Redis answer or wake-up finds nobody.
    rq_->chain.replied();
    rq_->redis_waiter = nullptr;
    rq_->resume_at_ms = 0;
  }
  if (close) {
    close_after_response_ = true;
    // The client may still be sending what we will not read (a body over the limit, ...).
    if (!rq_->req_body_done || !in_.empty()) linger_ = true;
  }
  rq_->status = http::statusOf(code);
  runResponseFilters(rq_->status, false);
  const http::LocalReply reply{code,
                               message,
                               std::string_view(rq_->request_id, rq_->request_id_len),
                               allow,
                               www_authenticate,
                               rq_->extra_headers,
                               close_after_response_,
                               rq_->keep_alive_1_0,
                               rq_->filter_headers,
                               rq_->grpc,
                               rq_->grpc_reply_type};
  writeReply([&](http::ReplyWriter& out) { http::writeLocalReply(reply, out); });
  if (state_ == State::Closed) return;
  rq_->extra_headers.clear();
  endWithLocalReply(close);
}

void Session::replyEmpty(int status, bool close) {
  if (close) {
    close_after_response_ = true;
    if (!rq_->req_body_done || !in_.empty()) linger_ = true;
  }
  rq_->status = status;
  runResponseFilters(status, false);
  const http::EmptyReply reply{status, std::string_view(rq_->request_id, rq_->request_id_len),
                               rq_->filter_headers, close_after_response_, rq_->keep_alive_1_0};
  writeReply([&](http::ReplyWriter& out) { http::writeEmptyReply(reply, out); });
  if (state_ == State::Closed) return;
  endWithLocalReply(close);
}

void Session::writeReply(const std::function<void(http::ReplyWriter&)>& write) {
  if (parent_ == nullptr) {
    http::TextReplyWriter text(out_);
    write(text);
    return;
  }
  if (stream_ == nullptr) {
    close();  // the stream is gone: nobody to answer
    return;
  }
  StreamReplyWriter fields(*parent_->h2_, *stream_, out_);
  write(fields);
  if (fields.failed()) close();
}

void Session::endWithLocalReply(bool close) {
  state_ = State::Proxy;
  rq_->echo = false;
  rq_->resp_head_done = true;
  rq_->resp_framing = http::BodyFraming::None;
  if (close) rq_->req_body_done = true;  // we will not read it
}

}  // namespace portico::proxy
