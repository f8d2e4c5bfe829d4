#include "proxy/session.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "auth/authenticator.hpp"
#include "core/buffer_pool.hpp"
#include "core/clock.hpp"
#include "http/path.hpp"
#include "proxy/http2_connection.hpp"
#include "proxy/worker.hpp"
#include "tls/server_context.hpp"
#include "upstream/maglev.hpp"

namespace portico::proxy {
namespace {

bool isValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '=' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Session::Session(Worker& worker) : worker_(worker) {}

Session::~Session() = default;

const config::Listener& Session::listener() const {
  const WorkerSnapshot* snap = rq_ && rq_->snap != nullptr ? rq_->snap : worker_.current_.get();
  return snap->shared->config.listeners[listener_index_];
}

void Session::open(int fd, const net::SocketAddress& peer, size_t listener_index) {
  resetTimer();
  fd_ = fd;
  peer_ = peer;
  peer_len_ = peer.formatHost(peer_text_, sizeof peer_text_);
  listener_index_ = listener_index;
  state_ = State::ReadHead;
  readable_ = writable_ = peer_eof_ = rdhup_ = false;
  linger_ = lingering_ = false;
  accepted_ms_ = worker_.loop().nowMs();
  idle_since_ms_ = accepted_ms_;
  client_cert_checked_ = client_cert_verified_ = false;
  const auto& tls_context = worker_.tlsContext(listener_index);
  secure_ = tls_context != nullptr;
  bool tls_ok = true;
  if (tls_context) {
    state_ = State::Handshake;
    tls_context_ = tls_context;  // the SNI callback uses it until the handshake is over
    tls_ok = tls_.accept(*tls_context, fd);
  }
  close_after_response_ = false;
  head_scanned_ = 0;
  head_started_ms_ = 0;
  net::setNoDelay(fd);
  worker_.loop().add(fd, this);
  if (!tls_ok) {
    close();
    return;
  }
  armClientTimer();
}

void Session::closeIfIdle() {
  if (state_ == State::ReadHead && in_.empty()) {
    close();
  } else if (state_ == State::Http2) {
    if (h2_->openStreams() == 0) {
      close();
    } else {
      h2_->shutdown();  // GOAWAY: the streams in flight finish, no new ones start
    }
  }
}

void Session::onEvents(uint32_t events) {
  if (state_ == State::Closed) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLRDHUP | EPOLLHUP)) rdhup_ = true;
  if (events & EPOLLOUT) {
    writable_ = true;
    if (tls_.readWantsWrite()) readable_ = true;
  }
  drive();
}

void Session::onUpstreamEvents(upstream::Connection&, uint32_t) { drive(); }

void Session::drive() {
  if (in_drive_) {
    drive_again_ = true;
    return;
  }
  in_drive_ = true;
  do {
    drive_again_ = false;
    bool progress = true;
    while (progress && state_ != State::Closed) {
      if (state_ == State::Handshake) {
        progress = continueHandshake();
        continue;
      }
      if (state_ == State::Http2) {
        progress = driveHttp2();
        continue;
      }
      // Nothing to do until the check, Redis or the delay comes back.
      if (state_ == State::FilterWait) {
        if (clientGone()) close();
        break;
      }
      progress = readClient();
      if (state_ == State::ReadHead) {
        progress |= tryStartRequest();
      }
      if (state_ == State::Proxy) {
        if (rq_->echo) {
          progress |= pumpEcho();
        } else if (rq_->awaiting_body && rq_->grpc_call) {
          progress |= collectGrpcBody();
        } else if (rq_->awaiting_body) {
          if (peer_eof_ && requestBodyReady() < rq_->req_remaining) {
            close();  // the client went away in the middle of its body
            break;
          }
          if (requestBodyReady() >= rq_->req_remaining) {
            rq_->awaiting_body = false;
            connectUpstream();
            progress = true;
          }
        } else {
          if (rq_->req_framing == http::BodyFraming::Chunked) progress |= scanRequestBody();
          if (state_ == State::Proxy && rq_->up != nullptr) progress |= sendRequestBody();
          if (state_ == State::Proxy && rq_->up != nullptr) progress |= readUpstream();
          if (state_ == State::Proxy && rq_->up != nullptr) progress |= scanResponseBody();
        }
      }
      if (state_ == State::Proxy && peer_eof_ && !rq_->req_body_done && requestBodyReady() == 0) {
        close();  // the client went away in the middle of its body: nothing more will come
        break;
      }
      if (state_ != State::Closed) progress |= writeClient();
      if (state_ == State::Proxy && out_.empty() && responseBodyReady() == 0 &&
          upstreamTruncated()) {
        close();
        break;
      }
      if (state_ == State::Proxy && responseFinished()) {
        finishRequest();
        progress = true;
      }
    }
  } while (drive_again_ && state_ != State::Closed);
  in_drive_ = false;
  if (state_ == State::Closed) return;
  armClientTimer();
}

bool Session::holdsBuffers() const {
  return in_.capacity() != 0 || out_.capacity() != 0 || rq_.holdsStorage();
}

void Session::releaseIdleBuffers() {
  if (rq_ || (state_ != State::ReadHead && state_ != State::Http2)) return;
  if (in_.empty() && in_.capacity() != 0) giveBuffer(in_);
  if (out_.empty() && out_.capacity() != 0) giveBuffer(out_);
  rq_.releaseStorage();
}


bool Session::tryStartRequest() {
  if (parent_ != nullptr) return stream_ != nullptr && !rq_ && startStreamRequest();
  // RFC 9112 §2.2: empty lines before a request line are skipped.
  while (head_scanned_ == 0 && in_.size() >= 2 && in_.data()[0] == '\r' && in_.data()[1] == '\n') {
    in_.consume(2);
  }
  if (in_.empty()) {
    if (peer_eof_) close();
    return false;
  }
  if (in_.data()[0] == 'P' && parent_ == nullptr && listener().http2) {
    switch (matchHttp2Preface(in_.view())) {
      case PrefaceMatch::Complete:
        startHttp2();
        return true;
      case PrefaceMatch::Partial:
        if (peer_eof_) close();
        return false;
      case PrefaceMatch::No:
        break;
    }
  }
  if (!rq_) beginRequest();
  size_t head_end = 0;
  http::ParseError error = http::ParseError::None;
  auto status = http::findHeadEnd(in_.data(), in_.size(), head_scanned_, head_end, error);
  if (status == http::ParseStatus::Error) {
    replyError(http::ErrorCode::BadRequest, http::describe(error), true);
    return true;
  }
  if (status == http::ParseStatus::Incomplete) {
    if (head_scanned_ > 0) {
      std::string_view seen(in_.data(), head_scanned_);
      if (!http::hasHttpVersion(seen.substr(0, seen.find('\r')))) {
        replyError(http::ErrorCode::BadRequest, "invalid request line", true);
        return true;
      }
    }
    const auto& limits = listener().limits;
    // RFC 9112 §3: 414 when the request line alone is over the limit, else 431 for the head.
    if (head_scanned_ == 0 && in_.size() > limits.max_uri_bytes + 64) {
      replyError(http::ErrorCode::UriTooLong, "request target too long", true);
      return true;
    }
    if (in_.size() > limits.max_header_bytes) {
      replyError(http::ErrorCode::HeadersTooLarge, "request header section too large", true);
      return true;
    }
    if (peer_eof_) close();  // a truncated head: nothing to answer
    return false;
  }
  startRequest(head_end);
  return true;
}

http::RequestLimits Session::requestLimits() const {
  const auto& limits = listener().limits;
  return {limits.max_header_bytes, limits.max_uri_bytes, 256};
}

void Session::refuseHead(http::ParseError error) {
  http::ErrorCode code =
      error == http::ParseError::UriTooLong ? http::ErrorCode::UriTooLong
      : (error == http::ParseError::HeadersTooLarge || error == http::ParseError::TooManyHeaders)
          ? http::ErrorCode::HeadersTooLarge
          : http::ErrorCode::BadRequest;
  replyError(code, http::describe(error), true);
}

void Session::startRequest(size_t head_end) {
  RequestState& rq = *rq_;
  head_scanned_ = 0;
  head_started_ms_ = 0;
  rq.bytes_in = head_end;
  http::ParseError error = http::ParseError::None;
  if (http::parseRequestHead(in_.data(), head_end, requestLimits(), rq.head, error) !=
      http::ParseStatus::Complete) {
    refuseHead(error);
    return;
  }
  if (rq.head.upgrade && parent_ == nullptr && tryH2cUpgrade(head_end)) return;
  // Consumed now, so every path from here (local replies included) moves past it. The views in
  // the head stay valid: consume() only moves the cursor, and nothing reads into in_ before the
  // request has been dispatched.
  in_.consume(head_end);
  serveRequest();
}

// A stream session's request: its head comes from the stream, already as fields.
bool Session::startStreamRequest() {
  beginRequest();
  RequestState& rq = *rq_;
  http::ParseError error = http::ParseError::None;
  if (!parent_->h2_->requestHead(*stream_, requestLimits(), rq.head, error)) {
    refuseHead(error);
    return true;
  }
  rq.bytes_in = rq.head.head_size;
  serveRequest();
  return true;
}

void Session::serveRequest() {
  RequestState& rq = *rq_;
  const config::Listener& listen = listener();
  rq.method.assign(rq.head.method);
  if (rq.head.method == "POST") noteGrpc();  // gRPC calls are POSTs; others pay nothing
  rq.version_1_0 = rq.head.version_minor == 0;
  rq.keep_alive_1_0 = rq.version_1_0 && rq.head.keep_alive;
  // A stream session serves one request: its stream ends with the response.
  close_after_response_ = !rq.head.keep_alive || worker_.draining() || parent_ != nullptr;

  const http::HeaderField* id = http::findHeader(rq.head.headers, "x-request-id");
  const bool client_id = id != nullptr && isValidRequestId(id->value);
  if (client_id) {
    std::memcpy(rq.request_id, id->value.data(), id->value.size());
    rq.request_id_len = id->value.size();
  } else {
    worker_.newRequestId(rq.request_id);
    rq.request_id_len = 32;
  }
  if (worker_.current_->shared->config.tracing.propagate) startTrace(!client_id);

  const http::PathOptions path_options{
      listen.path_parameters == config::Listener::PathParameters::Reject
          ? http::PathOptions::Parameters::Reject
          : http::PathOptions::Parameters::Strip,
      listen.lowercase_paths};
  if (rq.head.target == "*" ||
      http::normalizePath(rq.head.path, rq.path, path_options) != http::PathError::None) {
    // Logged without the query, which may hold a credential.
    rq.path.assign(rq.head.path.substr(0, std::min<size_t>(rq.head.path.size(), 256)));
    replyError(http::ErrorCode::BadRequest, "invalid request path", true);
    return;
  }
  if (listen.headers_with_underscores == config::Listener::Underscores::Reject &&
      hasUnderscoreName(rq.head.headers)) {
    replyError(http::ErrorCode::BadRequest, "header names with underscores are not accepted",
               true);
    return;
  }
  // CONNECT would make us a tunnel to anywhere, TRACE would echo credentials back (review L8).
  if (rq.head.method == "CONNECT" || rq.head.method == "TRACE") {
    replyError(http::ErrorCode::MethodNotAllowed, "method not allowed", true);
    return;
  }
  std::string_view host = rq.head.host;
  size_t host_end = host.starts_with('[') ? host.find(']') + 1 : host.rfind(':');
  host = host.substr(0, host_end == std::string_view::npos ? host.size() : host_end);
  // A fully qualified name's trailing dot names the same host (review L9).
  if (host.size() > 1 && host.back() == '.') host.remove_suffix(1);
  rq.host.resize(host.size());
  std::transform(host.begin(), host.end(), rq.host.begin(), http::asciiLower);

  rq.snap = worker_.acquireSnapshot();
  const Snapshot& snap = *rq.snap->shared;
  router::RequestView view{rq.head.method, rq.host, rq.path, rq.head.query, rq.head.headers};
  router::MatchResult match = snap.router->match(view);
  if (std::string_view announced = http::preflightMethod(rq.head.method, rq.head.headers);
      !announced.empty()) {
    routePreflight(announced, view, match);
  }
  bool has_body = rq.head.framing != http::BodyFraming::None;
  if (rq.head.upgrade && !has_body && !rq.version_1_0) {
    const http::HeaderField* upgrade = http::findHeader(rq.head.headers, "upgrade");
    rq.upgrade = upgrade != nullptr && http::equalsIgnoreCase(upgrade->value, "websocket");
  }
  if (match.status == router::MatchStatus::NotFound) {
    replyError(http::ErrorCode::NoRoute, "no route matches the request", has_body);
    return;
  }
  if (match.status == router::MatchStatus::MethodNotAllowed) {
    replyError(http::ErrorCode::MethodNotAllowed, "method not allowed on this path", has_body,
               match.allow);
    return;
  }
  const RouteRuntime& route = snap.routes[match.route_index];
  rq.route = &route;
  rq.max_body = listen.limits.max_body_bytes;  // a route's filters may say otherwise
  if (!route.filter_factories.empty()) {
    rq.chain.create(route.filter_factories, rq.scratch.arena);
    if (!runRequestFilters(match)) return;
  }
  admit(route, match);
}

void Session::admit(const RouteRuntime& route, const router::MatchResult& match) {
  if (rq_->head.framing == http::BodyFraming::Length && rq_->head.content_length > rq_->max_body) {
    replyError(http::ErrorCode::PayloadTooLarge, "request body exceeds the size limit", true);
    return;
  }
  dispatch(route, match);
}

void Session::dispatch(const RouteRuntime& route, const router::MatchResult& match) {
  RequestState& rq = *rq_;
  uint32_t pick = 0;
  if (route.upstreams.size() > 1) {
    uint32_t r = static_cast<uint32_t>(worker_.random() % route.cumulative_weight.back());
    while (route.cumulative_weight[pick] <= r) ++pick;
  }
  rq.upstream_index = route.upstreams[pick];
  rq.upstream_chosen = true;
  // The route's timeout caps the whole exchange, upload and response included.
  if (route.config->timeout) {
    rq.route_deadline_ms =
        worker_.loop().nowMs() + static_cast<uint64_t>(std::max<int64_t>(route.config->timeout->count(), 1));
  }
  const UpstreamRuntime& upstream = rq.snap->shared->upstreams[rq.upstream_index];

  rq.forward_target.clear();
  if (!startGrpcCall(route)) return;
  if (rq.forward_target.empty()) {  // (a transcoded request goes to its method's path)
    if (route.rewrites) {
      rq.snap->shared->router->rewrite(match, rq.path, rq.forward_target);
    } else {
      rq.forward_target.append(rq.path);
    }
    if (!rq.head.query.empty()) {
      rq.forward_target.push_back('?');
      rq.forward_target.append(rq.head.query);
    }
  }
  buildUpstreamHead();

  rq.req_framing = rq.head.framing;
  rq.keep_req_trailers = upstream.config->speaksHttp2();
  rq.req_remaining = rq.head.content_length;
  rq.req_body_done = rq.req_framing == http::BodyFraming::None;
  const bool expect_continue = rq.head.expect_continue && !rq.req_body_done;
  state_ = State::Proxy;
  // RFC 9110 §10.1.1: we answer 100 ourselves once the request passed our checks; the
  // upstream gets the body without having to ask for it.
  if (expect_continue) out_.append("HTTP/1.1 100 Continue\r\n\r\n");

  if (upstream.config->builtin == config::Upstream::Builtin::Echo) {
    rq.echo = true;
    return;
  }
  if (upstream.config->balancing == config::Upstream::Balancing::ConsistentHash) {
    std::string scratch;  // (the head's views may not outlive the reads that follow)
    rq.balancing_hash = upstream::hashKey(balancingKey(upstream.config->hash_on, scratch));
  }
  if (!admitToUpstream()) return;
  if (rq.grpc_call) {  // its body is read whole, then the call goes upstream
    rq.awaiting_body = true;
    return;
  }
  // A body that fits the buffer is read whole first: a slow upload then holds no upstream
  // connection, and the stall it may end in is the client's 408 alone.
  if (rq.req_framing == http::BodyFraming::Length && rq.req_remaining <= kMaxBodyBuffer &&
      requestBodyReady() < rq.req_remaining) {
    rq.awaiting_body = true;
    return;
  }
  connectUpstream();
}

bool Session::scanRequestBody() {
  RequestState& rq = *rq_;
  if (rq.req_body_done || rq.req_framing != http::BodyFraming::Chunked) return false;
  if (rq.req_scanned >= in_.size()) return false;
  auto r = rq.req_chunked.feed(in_.data() + rq.req_scanned, in_.size() - rq.req_scanned);
  if (r.error) {
    upstreamFailed(http::ErrorCode::BadRequest, "malformed chunked request body");
    return true;
  }
  // Checked on what a size line announces, before it goes on (review M1): an upstream that reads
  // sizes in 32 bits would otherwise find a request inside what we took for one large chunk.
  if (rq.req_chunked.announcedBytes() > rq.max_body) {
    upstreamFailed(http::ErrorCode::PayloadTooLarge, "request body exceeds the size limit");
    return true;
  }
  rq.req_scanned += r.consumed;
  // Request trailers go only to HTTP/2 upstreams, as a HEADERS frame of their own. HTTP/1.1 ones
  // do not get them (RFC 9110 §6.5.1 lets a proxy drop them; some servers merge them into the
  // header section): the body ends with the last chunk and the CRLF.
  if (!rq.keep_req_trailers) rq.req_trailer_bytes += r.trailer_bytes;
  if (r.done && rq.req_trailer_bytes > 0) {
    in_.erase(rq.req_scanned - 2 - rq.req_trailer_bytes, rq.req_trailer_bytes);
    rq.req_scanned -= rq.req_trailer_bytes;
    rq.req_trailer_bytes = 0;
  }
  rq.req_validated = rq.req_scanned - rq.req_trailer_bytes;
  return r.consumed > 0;
}

size_t Session::requestBodyReady() {
  if (rq_->req_body_done) return 0;
  if (rq_->req_framing == http::BodyFraming::Length) {
    return static_cast<size_t>(std::min<uint64_t>(in_.size(), rq_->req_remaining));
  }
  if (rq_->req_framing == http::BodyFraming::UntilClose) return in_.size();  // a tunnel
  return rq_->req_validated;
}

bool Session::responseFinished() const {
  if (!rq_->resp_head_done || !out_.empty()) return false;
  if (rq_->echo || rq_->up == nullptr) return true;  // local replies live entirely in out_
  switch (rq_->resp_framing) {
    case http::BodyFraming::None: return true;
    case http::BodyFraming::Length: return rq_->resp_remaining == 0;
    case http::BodyFraming::Chunked: return rq_->resp_chunked.done() && rq_->resp_validated == 0;
    case http::BodyFraming::UntilClose: return rq_->up->eof && rq_->up->in.empty();
  }
  return false;
}

void Session::beginRequest() {
  rq_.emplace(monotonicUs());
  // A stream's answer goes to the stream as fields and body: its out_ grows only for the
  // gateway's own answers.
  if (out_.capacity() == 0 && parent_ == nullptr) out_ = takeBuffer(kOutBuffer);
}

void Session::endRequest(bool upstream_reusable) {
  if (!rq_) return;
  recordUpstreamOutcome();
  if (worker_.metrics() != nullptr) recordMetrics();
  if (rq_->traced && (rq_->trace_flags & 1) && worker_.exportsSpans()) exportSpan();
  rq_->chain.complete({rq_->status, !rq_->finished});
  if (rq_->up != nullptr) detachUpstream(upstream_reusable);
  if (rq_->snap != nullptr) worker_.releaseSnapshot(rq_->snap);
  rq_.reset();
}

void Session::finishRequest() {
  bool reusable = false;
  if (rq_->up != nullptr) {
    reusable = rq_->upstream_reusable && rq_->req_body_done && !rq_->up->eof &&
               rq_->up->in.empty() && rq_->resp_framing != http::BodyFraming::UntilClose;
  }
  if (!rq_->req_body_done) close_after_response_ = true;  // the rest of its body is still coming
  rq_->finished = true;
  writeAccessLog();
  endRequest(reusable);
  if (close_after_response_ || worker_.draining()) {
    if (out_.empty()) {
      close();
    } else {
      state_ = State::Flush;
    }
    return;
  }
  state_ = State::ReadHead;
}

void Session::upstreamFailed(http::ErrorCode code, const char* message) {
  if (!rq_->upstream_failed && tryRetry(retryConditionOf(code))) return;
  if (!rq_->upstream_failed) {
    using observability::UpstreamOutcome;
    rq_->upstream_failed = true;
    rq_->upstream_failure = code == http::ErrorCode::UpstreamTimeout ? UpstreamOutcome::Timeout
                            : rq_->up == nullptr || rq_->up->connecting || rq_->up->handshaking
                                ? UpstreamOutcome::ConnectFailure
                                : UpstreamOutcome::Reset;
  }
  if (rq_->up != nullptr) detachUpstream(false);
  if (rq_->resp_head_done) {
    close();
    return;
  }
  replyError(code, message, closesAfterReply());
}

void Session::close() {
  if (state_ == State::Closed) return;
  endRequest(false);
  if (parent_ != nullptr) {
    if (Http2Stream* stream = stream_) {
      stream_ = nullptr;
      parent_->h2_->streamSessionClosed(*stream);
    }
    parent_ = nullptr;
  } else {
    if (h2_) h2_->abortAll();  // its stream sessions go first: they point into it
    h2_.reset();
    tls_.close();
    tls_context_.reset();
    ::close(fd_);  // also takes it out of the epoll set: no EPOLL_CTL_DEL needed
  }
  giveBuffer(in_);
  giveBuffer(out_);
  rq_.releaseStorage();
  fd_ = -1;
  state_ = State::Closed;
  resetTimer();
  worker_.sessionClosed(this);
}

}  // namespace portico::proxy
