// The upstream half of a session: choosing an endpoint, sending the request, reading and
// relaying the response, and what an upstream failure turns into.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "auth/authenticator.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "transcode/grpc_call.hpp"
#include "upstream/cluster.hpp"
#include "upstream/http2_client.hpp"
#include "upstream/maglev.hpp"

namespace portico::proxy {
namespace {

constexpr size_t kMaxUpstreamHead = 64 * 1024;

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE";
}

}  // namespace

// The upstream connection's timer, by the exchange's phase: `request` runs from the moment the
// whole request has been sent (an upload is never cut by it), and while the body goes up, and
// after the response head, `idle` bounds each pause. The route's timeout and a gRPC deadline cap
// all of them.
void Session::armUpstreamTimer() {
  const config::UpstreamTimeouts& timeouts =
      rq_->snap->shared->upstreams[rq_->upstream_index].config->timeouts;
  const auto ms = [](config::Duration d) { return static_cast<uint64_t>(d.count()); };
  const bool waiting_for_head = rq_->req_body_done && !rq_->resp_head_done;
  worker_.loop().setTimeout(
      *rq_->up, withinDeadline(waiting_for_head ? ms(timeouts.request) : ms(timeouts.idle)));
}

uint64_t Session::withinDeadline(uint64_t timeout_ms) const {
  const uint64_t deadline = rq_->deadlineMs();
  if (deadline == 0) return timeout_ms;
  uint64_t now = worker_.loop().nowMs();
  uint64_t left = deadline > now ? deadline - now : 1;
  return std::min(timeout_ms, left);
}

std::string_view Session::balancingKey(const config::HashOn& hash_on, std::string& scratch) {
  std::string_view key;
  switch (hash_on.kind) {
    case config::HashOn::Kind::Ip: break;
    case config::HashOn::Kind::Consumer:
      if (authenticated() && rq_->identity->consumer != nullptr) key = rq_->identity->consumer->name;
      break;
    case config::HashOn::Kind::Header:
      if (const http::HeaderField* h = http::findHeader(rq_->head.headers, hash_on.name)) {
        key = h->value;
      }
      break;
    case config::HashOn::Kind::Cookie:
      key = http::findCookie(rq_->head.headers, hash_on.name);
      break;
  }
  // Without the key, the client's address keeps one client on one endpoint.
  return key.empty() ? limitClientKey(scratch) : key;
}

void Session::connectUpstream() {
  const UpstreamRuntime& upstream = rq_->snap->shared->upstreams[rq_->upstream_index];
  upstream::Cluster& cluster = rq_->snap->clusters[rq_->upstream_index];
  const config::Upstream& settings = *upstream.config;
  using Balancing = config::Upstream::Balancing;
  rq_->endpoint_index =
      cluster.pick(settings.balancing == Balancing::RoundRobin ? 0 : worker_.random(),
                   rq_->balancing_hash, rq_->failed_endpoint, worker_.loop().nowMs());
  if (rq_->endpoint_index == upstream::Cluster::kNone) {
    rq_->endpoint_index = 0;
    replyError(http::ErrorCode::Unavailable, "no healthy endpoint", closesAfterReply());
    return;
  }
  upstream::EndpointPool& pool = cluster.endpoint(rq_->endpoint_index);
  rq_->upstream_start_us = monotonicUs();
  if (worker_.hasMetricsStorage()) {
    rq_->endpoint_metrics =
        &worker_.endpointMetrics(*rq_->snap, rq_->upstream_index, rq_->endpoint_index);
  }
  rq_->up = worker_.acquireUpstream(pool, this, rq_->up_reused, upstream.config->max_connections);
  if (rq_->up == nullptr) {
    if (errno == EMFILE || errno == ENFILE || errno == EBUSY) {
      upstreamFailed(http::ErrorCode::Unavailable, "upstream connection limit reached");
    } else {
      upstreamFailed(http::ErrorCode::BadUpstream, "cannot connect to upstream");
    }
    return;
  }
  ++pool.active_requests;
  if (rq_->endpoint_metrics != nullptr) rq_->endpoint_metrics->in_flight.add(1);
  if (rq_->grpc_call) rq_->grpc_call->startResponse();
  rq_->up->out.clear();
  rq_->up->out.append(rq_->upstream_head.view());
  // A retry sends again what the last try sent. A gRPC call's body is sent from where it is
  // (it may be megabytes, and a pooled connection's buffer would keep that size for good).
  rq_->grpc_body_sent = 0;
  if (!rq_->grpc_call) rq_->up->out.append(rq_->replay_body);
  auto& loop = worker_.loop();
  if (!rq_->up->connecting) rq_->upstream_connected_us = rq_->upstream_start_us;
  if (rq_->up->connecting) {
    loop.setTimeout(
        *rq_->up, withinDeadline(static_cast<uint64_t>(upstream.config->timeouts.connect.count())));
  } else {
    armUpstreamTimer();
  }
}

bool Session::tryStaleRetry() {
  // A pooled connection the upstream closed while it sat idle fails on first use. Nothing was
  // received and a request without a body can be sent again as it was, once.
  if (!rq_->up_reused || rq_->retried || rq_->resp_head_done || !rq_->up->in.empty() ||
      rq_->req_framing != http::BodyFraming::None) {
    return false;
  }
  rq_->retried = true;
  detachUpstream(false);
  connectUpstream();
  return true;
}

bool Session::sendRequestBody() {
  upstream::Connection& up = *rq_->up;
  if (up.connecting) {
    if (!up.writable && !up.readable) return false;
    // A refused connect shows as an error event (readable/hangup), a finished one as writable.
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(up.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      upstreamFailed(http::ErrorCode::BadUpstream, "upstream refused the connection");
      return true;
    }
    if (!up.writable) return false;
    up.connecting = false;
    rq_->upstream_connected_us = monotonicUs();
    armUpstreamTimer();
    if (up.pool->tls) {
      if (!up.tls.connect(*up.pool->tls, up.fd, up.pool->tls_host)) {
        upstreamFailed(http::ErrorCode::BadUpstream, "cannot set up TLS to the upstream");
        return true;
      }
      up.handshaking = true;
    }
  }
  if (up.handshaking && !continueUpstreamHandshake())
    return state_ != State::Proxy || rq_->up == nullptr;
  if (!up.writable) return false;
  iovec iov[2];
  int count = 0;
  if (!up.out.empty()) iov[count++] = {up.out.data(), up.out.size()};
  const bool grpc_call = rq_->grpc_call != nullptr;
  size_t body = grpc_call ? rq_->replay_body.size() - rq_->grpc_body_sent : requestBodyReady();
  if (body > 0) {
    iov[count++] = {grpc_call ? rq_->replay_body.data() + rq_->grpc_body_sent : in_.data(), body};
  }
  if (count == 0) return false;
  size_t total = count == 2 ? iov[0].iov_len + iov[1].iov_len : iov[0].iov_len;
  ssize_t n = up.h2 != nullptr     ? up.h2->write(up, iov, count)
              : up.tls.active() ? up.tls.writev(iov, count)
                                : ::writev(up.fd, iov, count);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      up.writable = false;
      return false;
    }
    if (errno == EINTR) return true;
    if (!tryStaleRetry()) {
      upstreamFailed(http::ErrorCode::BadUpstream, "upstream connection reset");
    }
    return true;
  }
  size_t written = static_cast<size_t>(n);
  size_t from_head = std::min(written, up.out.size());
  up.out.consume(from_head);
  size_t body_sent = written - from_head;
  if (body_sent > 0 && grpc_call) {
    rq_->grpc_body_sent += body_sent;
  } else if (body_sent > 0) {
    keepForReplay(in_.data(), body_sent);
    in_.consume(body_sent);
    rq_->bytes_in += body_sent;
    if (rq_->req_framing == http::BodyFraming::Length) {
      rq_->req_remaining -= body_sent;
      rq_->req_body_done = rq_->req_remaining == 0;
    } else if (rq_->req_framing == http::BodyFraming::Chunked) {
      rq_->req_validated -= body_sent;
      rq_->req_scanned -= body_sent;
      rq_->req_body_done = rq_->req_chunked.done() && rq_->req_validated == 0;
    }
    // The upload moved: its pause timer starts again, or, once it is all sent, the wait for
    // the head begins.
    if (!rq_->resp_head_done) armUpstreamTimer();
  }
  if (written < total) up.writable = false;
  return true;
}

// True when the handshake is done; false while it waits or after it failed (answered 502).
bool Session::continueUpstreamHandshake() {
  upstream::Connection& up = *rq_->up;
  if (!up.readable && !up.writable) return false;
  switch (up.tls.handshake()) {
    case tls::Stream::Handshake::Done:
      up.handshaking = false;
      up.writable = true;  // the socket took the handshake: try the request at once
      up.readable = true;  // and OpenSSL may hold records read with the last flight
      return true;
    case tls::Stream::Handshake::WantIo:
      up.readable = up.writable = false;
      return false;
    case tls::Stream::Handshake::Failed:
      break;
  }
  LOG_WARN("upstream \"%s\" endpoint %s: TLS handshake failed: %s",
           rq_->snap->shared->upstreams[rq_->upstream_index].config->name.c_str(),
           up.pool->key.c_str(), up.tls.failure().c_str());
  upstreamFailed(http::ErrorCode::BadUpstream, "TLS handshake with the upstream failed");
  return false;
}

bool Session::readUpstream() {
  upstream::Connection& up = *rq_->up;
  if (up.connecting || up.handshaking || !up.readable || up.eof) return false;
  // De-chunking copies into out_: reading waits while the client has not taken what is there
  // (review H2), as it does for bodies relayed from up.in.
  if (rq_->resp_dechunk && out_.size() >= kMaxBodyBuffer) return false;
  Buffer& in = up.in;
  if (in.writable() < 4096) in.compact();
  if (in.writable() == 0 && !rq_->resp_head_done && in.capacity() < kMaxUpstreamHead) {
    in.reserve(in.capacity() * 2);
  }
  size_t want = in.writable();
  if (want == 0) {
    if (!rq_->resp_head_done) {
      upstreamFailed(http::ErrorCode::BadUpstream, "upstream response head too large");
      return true;
    }
    return false;  // backpressure: the client has not taken what we have
  }
  ssize_t n = rq_->grpc_call     ? readGrpcCall(up, in.writePtr(), want)
              : up.h2 != nullptr ? up.h2->read(up, in.writePtr(), want)
              : up.tls.active()  ? up.tls.read(in.writePtr(), want)
                                 : ::read(up.fd, in.writePtr(), want);
  if (n > 0) {
    in.commit(static_cast<size_t>(n));
    // (A gRPC call's answer that is all made reads short but has no more to wait for.)
    if (static_cast<size_t>(n) < want && !up.rdhup && !up.tls.active() &&
        !(rq_->grpc_call && rq_->grpc_call->ended())) {
      up.readable = false;
    }
    if (rq_->resp_head_done && rq_->req_framing != http::BodyFraming::UntilClose) {
      worker_.loop().setTimeout(
          up,
          withinDeadline(static_cast<uint64_t>(
              rq_->snap->shared->upstreams[rq_->upstream_index].config->timeouts.idle.count())));
    }
  } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    up.eof = true;
    up.readable = false;
  } else {
    if (errno != EINTR) up.readable = false;
    return errno == EINTR;
  }
  if (!rq_->resp_head_done) {
    processResponseHead();
    return true;
  }
  return true;
}

bool Session::upstreamTruncated() const {
  // The upstream closed before the end of a length-delimited or chunked body, and everything it
  // did send has been passed on: the client must not take the short body for a whole one, so
  // the only honest signal left is closing its connection.
  if (rq_->up == nullptr || !rq_->up->eof || !rq_->resp_head_done || rq_->resp_dechunk)
    return false;
  if (rq_->resp_framing == http::BodyFraming::Length)
    return rq_->resp_remaining > rq_->up->in.size();
  if (rq_->resp_framing == http::BodyFraming::Chunked) {
    return !rq_->resp_chunked.done() && rq_->resp_validated == rq_->up->in.size();
  }
  return false;
}

bool Session::processResponseHead() {
  upstream::Connection& up = *rq_->up;
  for (;;) {
    size_t head_end = 0;
    http::ParseError error = http::ParseError::None;
    auto status = http::findHeadEnd(up.in.data(), up.in.size(), rq_->resp_scanned, head_end, error);
    if (status == http::ParseStatus::Incomplete) {
      if (up.eof) {
        // The request may have been processed before the close: sent again only if that is
        // harmless (RFC 9112 §9.3.1; review L1).
        if (up.in.empty() && isIdempotent(rq_->method) && tryStaleRetry()) return true;
        upstreamFailed(http::ErrorCode::BadUpstream,
                       up.in.empty() ? "upstream closed the connection without answering"
                                     : "upstream sent an incomplete response");
        return true;
      }
      return false;
    }
    if (status == http::ParseStatus::Error ||
        http::parseResponseHead(up.in.data(), head_end, rq_->method, up.head, error) !=
            http::ParseStatus::Complete) {
      upstreamFailed(http::ErrorCode::BadUpstream, "upstream sent an invalid response");
      return true;
    }
    rq_->resp_scanned = 0;
    if (up.head.status == 101 && rq_->upgrade) {
      startTunnel(head_end);
      return true;
    }
    if (up.head.status < 200) {
      if (up.head.status == 101) {
        upstreamFailed(http::ErrorCode::BadUpstream, "upstream switched protocols unasked");
        return true;
      }
      up.in.consume(head_end);  // 100 Continue was answered by us; 103 hints are dropped
      continue;
    }
    // A status the retry policy names is held back while another try may follow.
    if (const auto& retry = rq_->snap->shared->upstreams[rq_->upstream_index].config->retry;
        retry && retry->retriesStatus(up.head.status) && tryRetry(RetryCondition::Status)) {
      return true;
    }
    rq_->upstream_head_us = monotonicUs();
    const auto& timeouts = rq_->snap->shared->upstreams[rq_->upstream_index].config->timeouts;
    worker_.loop().setTimeout(up, withinDeadline(static_cast<uint64_t>(timeouts.idle.count())));
    rq_->status = up.head.status;
    // The breaker and outlier ejection learn the answer now, before the client can see it.
    recordUpstreamOutcome();
    rq_->resp_framing = up.head.framing;
    rq_->resp_remaining = up.head.content_length;
    rq_->resp_chunked.reset();
    rq_->resp_validated = 0;
    rq_->upstream_reusable = up.head.keep_alive;
    if (rq_->resp_framing == http::BodyFraming::UntilClose) close_after_response_ = true;
    // Answered before the request body was all sent: the rest of it is still on its way from
    // the client, so this connection cannot carry another request.
    if (!rq_->req_body_done) close_after_response_ = true;
    if (rq_->version_1_0 && rq_->resp_framing == http::BodyFraming::Chunked) {
      rq_->resp_dechunk = true;  // HTTP/1.0 has no chunked coding: decode, end with the connection
      close_after_response_ = true;
    }
    if (worker_.draining()) close_after_response_ = true;
    buildClientResponseHead(up.head);
    if (state_ == State::Closed) return true;  // the stream could not take the head
    up.in.consume(head_end);
    rq_->resp_head_done = true;
    return true;
  }
}

void Session::startTunnel(size_t head_end) {
  upstream::Connection& up = *rq_->up;
  rq_->upstream_head_us = monotonicUs();
  // A tunnel in use is bounded by the listener's idle timeout, kept by traffic either way (the
  // client timer); the upstream's pool timeouts are for requests, not for it.
  worker_.loop().clearTimeout(up);
  rq_->status = 101;
  rq_->upstream_reusable = false;
  close_after_response_ = true;  // when the tunnel ends, so does the connection
  buildClientResponseHead(up.head);
  up.in.consume(head_end);
  rq_->resp_head_done = true;
  // From here on, whatever either side sends is relayed as it comes.
  rq_->resp_framing = http::BodyFraming::UntilClose;
  rq_->req_framing = http::BodyFraming::UntilClose;
  rq_->req_body_done = false;
}

bool Session::scanResponseBody() {
  if (!rq_->resp_head_done || rq_->resp_framing != http::BodyFraming::Chunked) return false;
  Buffer& in = rq_->up->in;
  if (rq_->resp_dechunk) {
    if (in.empty() || out_.size() >= kMaxBodyBuffer) return false;
    std::string decoded;
    auto r = rq_->resp_chunked.feed(in.data(), in.size(), &decoded);
    if (r.error) {
      close();
      return false;
    }
    out_.append(decoded);
    in.consume(r.consumed);
    return r.consumed > 0;
  }
  if (rq_->resp_validated >= in.size() || rq_->resp_chunked.done()) return false;
  auto r = rq_->resp_chunked.feed(in.data() + rq_->resp_validated, in.size() - rq_->resp_validated);
  rq_->resp_validated += r.consumed;
  if (r.error) {
    close();  // the response has begun: cutting the connection is the only honest signal
    return false;
  }
  return r.consumed > 0;
}

size_t Session::responseBodyReady() {
  if (!rq_->resp_head_done || rq_->resp_dechunk) return 0;
  switch (rq_->resp_framing) {
    case http::BodyFraming::None: return 0;
    case http::BodyFraming::Length:
      return static_cast<size_t>(std::min<uint64_t>(rq_->up->in.size(), rq_->resp_remaining));
    case http::BodyFraming::Chunked: return rq_->resp_validated;
    case http::BodyFraming::UntilClose: return rq_->up->in.size();
  }
  return 0;
}

void Session::consumeResponseBody(size_t n) {
  rq_->up->in.consume(n);
  if (rq_->resp_framing == http::BodyFraming::Length) rq_->resp_remaining -= n;
  else if (rq_->resp_framing == http::BodyFraming::Chunked) rq_->resp_validated -= n;
}

void Session::detachUpstream(bool reusable) {
  if (rq_->up == nullptr) return;
  const auto& upstream = rq_->snap->shared->upstreams[rq_->upstream_index];
  --rq_->up->pool->active_requests;
  if (rq_->endpoint_metrics != nullptr) rq_->endpoint_metrics->in_flight.add(-1);
  worker_.releaseUpstream(rq_->up, reusable, upstream.config->max_idle);
  rq_->up = nullptr;
}

}  // namespace portico::proxy
