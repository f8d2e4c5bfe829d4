// A session's timers: the client's (handshake and header timeouts, keep-alive idleness, a filter's
// wait, a retry's backoff, a buffered upload's pauses, the linger after an error) and what an
// upstream connection's timer firing means for the request.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "proxy/http2_connection.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {
namespace {

constexpr uint64_t kLingerMs = 1000;  // how long a closing connection reads what still comes

}  // namespace

void Session::onUpstreamTimeout(upstream::Connection& conn) {
  if (!rq_ || &conn != rq_->up) return;
  const uint64_t now = worker_.loop().nowMs();
  const auto passed = [now](uint64_t deadline) { return deadline != 0 && now >= deadline; };
  if (rq_->resp_head_done) {
    close();  // the response body stalled: the client can only learn it from a cut connection
  } else if (passed(rq_->grpc_deadline_ms)) {
    upstreamFailed(http::ErrorCode::UpstreamTimeout, "deadline exceeded");
  } else if (passed(rq_->route_deadline_ms)) {
    upstreamFailed(http::ErrorCode::UpstreamTimeout, "the route's timeout passed");
  } else if (conn.connecting) {
    upstreamFailed(http::ErrorCode::UpstreamTimeout, "upstream connect timed out");
  } else if (!rq_->req_body_done && conn.out.empty() && requestBodyReady() == 0) {
    // Everything the client sent has gone upstream: it is the client that stopped sending.
    rq_->upstream_failed = true;
    rq_->upstream_failure = observability::UpstreamOutcome::Cancelled;
    upstreamFailed(http::ErrorCode::RequestTimeout, "the request body stopped arriving");
  } else if (!rq_->req_body_done) {
    upstreamFailed(http::ErrorCode::UpstreamTimeout, "upstream stopped reading the request");
  } else {
    upstreamFailed(http::ErrorCode::UpstreamTimeout, "upstream did not answer in time");
  }
  drive();
}

void Session::onTimer() {
  switch (state_) {
    case State::Handshake:
      close();  // a handshake counts against the header timeout: no slow TLS loris either
      break;
    case State::ReadHead:
      if (in_.empty() && holdsBuffers()) {
        releaseIdleBuffers();  // idle for kBufferHoldMs: the rest of the idle time costs none
        armClientTimer();
      } else if (in_.empty()) {
        close();  // keep-alive idle timeout
      } else {
        replyError(http::ErrorCode::RequestTimeout, "request header not received in time", true);
        drive();
      }
      break;
    case State::Http2:
      if (h2_->activeStreamSessions() == 0 && out_.empty() && holdsBuffers()) {
        releaseIdleBuffers();  // as on an idle HTTP/1.1 connection
        armClientTimer();
      } else {
        close();
      }
      break;
    case State::Proxy:
      if (rq_ && rq_->retry_at_ms != 0) {
        retryAfterBackoff();
      } else if (rq_ && rq_->awaiting_body) {
        if (rq_->deadlinePassed(worker_.loop().nowMs())) {
          replyError(http::ErrorCode::UpstreamTimeout, "the request's deadline passed", true);
        } else {
          replyError(http::ErrorCode::RequestTimeout, "the request body stopped arriving", true);
        }
        drive();
      } else {
        close();
      }
      break;
    case State::Flush:
      close();
      break;
    case State::FilterWait:
      if (rq_->resume_at_ms != 0) {
        rq_->resume_at_ms = 0;
        resume();  // the wait the filter asked for is over
      } else {
        replyError(http::ErrorCode::Unavailable, "the route's filters took too long", true);
        drive();
      }
      break;
    case State::Closed:
      break;
  }
}

// While a filter waits nothing is read (the head's views point into in_), but a client that
// reset or closed the connection is noticed at once, as NGINX does: its request is abandoned,
// and the work done for it (a password check, a Redis call, a delay) stops.
bool Session::clientGone() {
  if (parent_ != nullptr || fd_ < 0) return false;
  if (peer_eof_) return true;  // its FIN came with the request
  if (!readable_) return false;
  char byte;
  ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // more bytes (pipelined): read after the pause
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    readable_ = false;
    return false;
  }
  return true;  // FIN, or an error such as ECONNRESET
}

void Session::armClientTimer() {
  const auto& limits = listener().limits;
  auto& loop = worker_.loop();
  switch (state_) {
    case State::Handshake:
      loop.setDeadline(*this, accepted_ms_ + static_cast<uint64_t>(limits.header_timeout.count()));
      break;
    case State::FilterWait:
      if (rq_->resume_at_ms != 0) {
        loop.setDeadline(*this, rq_->resume_at_ms);
      } else {
        loop.setTimeout(*this, static_cast<uint64_t>(limits.idle_timeout.count()));
      }
      break;
    case State::ReadHead:
      if (in_.empty()) {
        head_started_ms_ = 0;
        armIdleTimer();
      } else {
        // Fixed from the first byte of the head: trickling bytes does not extend it.
        if (head_started_ms_ == 0) head_started_ms_ = loop.nowMs();
        loop.setDeadline(*this,
                         head_started_ms_ + static_cast<uint64_t>(limits.header_timeout.count()));
      }
      break;
    case State::Proxy:
      if (rq_->retry_at_ms != 0) {
        loop.setDeadline(*this, rq_->retry_at_ms);  // backing off before a retry
        break;
      }
      if (rq_->awaiting_body) {  // each pause of the upload: the shorter of the two idles
        const auto& timeouts = rq_->snap->shared->upstreams[rq_->upstream_index].config->timeouts;
        const auto idle = std::min(timeouts.idle, limits.idle_timeout);
        loop.setTimeout(*this, withinDeadline(static_cast<uint64_t>(idle.count())));
        break;
      }
      // Waiting on the client (its body, or for it to take our response) is bounded by the idle
      // timeout; waiting on the upstream is the upstream's timers' business.
      if ((!rq_->req_body_done && in_.empty()) || !out_.empty() ||
          rq_->req_framing == http::BodyFraming::UntilClose ||
          (!writable_ && rq_->up != nullptr && responseBodyReady() > 0)) {
        loop.setTimeout(*this, static_cast<uint64_t>(limits.idle_timeout.count()));
      } else {
        loop.clearTimeout(*this);
      }
      break;
    case State::Flush:
      // After an error, the client gets a moment to take our answer, not a whole idle timeout.
      loop.setTimeout(*this, linger_ ? kLingerMs
                                     : static_cast<uint64_t>(limits.idle_timeout.count()));
      break;
    case State::Http2:
      // Streams have timers of their own; the connection's covers idleness and a client that
      // does not read what it is sent.
      if (uint64_t started = h2_->headerBlockStartedMs(); started != 0) {
        loop.setDeadline(*this, started + static_cast<uint64_t>(limits.header_timeout.count()));
      } else if (!out_.empty()) {
        loop.setTimeout(*this, static_cast<uint64_t>(limits.idle_timeout.count()));
      } else if (h2_->activeStreamSessions() == 0) {
        armIdleTimer();  // as an idle HTTP/1.1 connection's: the next stream usually comes soon
      } else {
        loop.clearTimeout(*this);
      }
      break;
    case State::Closed:
      break;
  }
}

// A connection between requests: its buffers go back after kBufferHoldMs (a keep-alive client's
// next request usually comes sooner), the connection itself after the idle timeout.
void Session::armIdleTimer() {
  auto& loop = worker_.loop();
  const auto idle = static_cast<uint64_t>(listener().limits.idle_timeout.count());
  if (holdsBuffers()) {
    idle_since_ms_ = loop.nowMs();
    loop.setTimeout(*this, std::min(kBufferHoldMs, idle));
  } else {
    loop.setDeadline(*this, idle_since_ms_ + idle);
  }
}

}  // namespace portico::proxy
