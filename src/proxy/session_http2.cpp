// The HTTP/2 side of sessions: a connection switching to HTTP/2, its drive loop, and the stream
// sessions that serve its streams (see http2_connection.hpp).
#include <cerrno>
#include <cstring>

#include "auth/jwt/base64url.hpp"
#include "core/buffer_pool.hpp"
#include "proxy/http2_connection.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {
namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kMaxPendingOutput = 64 * 1024;  // frames produced ahead of the socket
constexpr size_t kReadBuffer = 16 * 1024;

}  // namespace

PrefaceMatch matchHttp2Preface(std::string_view data) {
  size_t n = std::min(data.size(), kPreface.size());
  if (data.substr(0, n) != kPreface.substr(0, n)) return PrefaceMatch::No;
  return n == kPreface.size() ? PrefaceMatch::Complete : PrefaceMatch::Partial;
}

void Session::startHttp2(std::string_view upgrade_settings, const http::RequestHead* upgrade) {
  state_ = State::Http2;
  h2_ = std::make_unique<Http2Connection>(*this, worker_, listener().limits);
  if (!h2_->start(upgrade_settings, upgrade)) close();
}

// RFC 7540 §3.2 (kept by RFC 9113 as optional): an HTTP/1.1 request without a body that asks
// for h2c becomes stream 1 of an HTTP/2 connection.
bool Session::tryH2cUpgrade(size_t head_end) {
  if (!listener().http2 || secure_ || rq_->head.framing != http::BodyFraming::None) return false;
  const http::HeaderField* upgrade = http::findHeader(rq_->head.headers, "upgrade");
  const http::HeaderField* settings = http::findHeader(rq_->head.headers, "http2-settings");
  if (upgrade == nullptr || settings == nullptr || !http::equalsIgnoreCase(upgrade->value, "h2c")) {
    return false;
  }
  std::string payload;
  if (!auth::jwt::base64UrlDecode(settings->value, payload)) return false;  // serve it as 1.1
  out_.append("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  // The head's fields are copied into stream 1 before in_ moves on.
  startHttp2(payload, &rq_->head);
  if (state_ == State::Closed) return true;
  in_.consume(head_end);
  rq_.reset();  // the request goes on as stream 1, in a stream session of its own
  return true;
}

bool Session::driveHttp2() {
  bool progress = false;
  // While the client does not take what we have for it, it is not read either: what it sends
  // makes us answer (refused streams, ACKs), and those answers would queue without bound
  // inside nghttp2 (review L11). Its idle timer runs meanwhile.
  if (readable_ && !peer_eof_ && out_.size() < kMaxPendingOutput) {
    if (in_.capacity() == 0) in_ = takeBuffer(kReadBuffer);
    if (in_.writable() < 4096) in_.compact();
    if (in_.writable() == 0) in_.reserve(std::max(in_.capacity() * 2, kReadBuffer));
    ssize_t n = readSocket(in_.writePtr(), in_.writable());
    if (n > 0) {
      in_.commit(static_cast<size_t>(n));
      progress = true;
    } else if (n == 0) {
      peer_eof_ = true;
      readable_ = false;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
    } else if (errno != EINTR) {
      close();
      return false;
    }
  }
  bool healthy = true;
  if (!in_.empty()) {
    healthy = h2_->receive(in_);
    progress = true;
  }
  if (healthy) progress |= h2_->runReady();
  if (state_ == State::Closed) return false;
  // After a protocol error nghttp2 still has its GOAWAY to send: one attempt, then close.
  if (out_.capacity() == 0) out_ = takeBuffer(kOutBuffer);
  if (!h2_->produce(out_, kMaxPendingOutput)) healthy = false;
  progress |= writeClient();
  if (state_ == State::Closed) return false;
  if (!healthy) {
    // A protocol error or a flood: the streams end now, the GOAWAY is sent, and the connection
    // closes with a lingering read so the client gets to see why.
    h2_->abortAll();
    linger_ = true;
    state_ = State::Flush;
    return true;
  }
  if (peer_eof_ || (h2_->finished() && out_.empty())) {
    close();
    return false;
  }
  return progress;
}

Session* Session::startStreamSession(Http2Stream& stream) {
  Session* session = worker_.newStreamSession(listener().limits.http2_max_streams_per_worker);
  if (session != nullptr) session->openStream(*this, stream);
  return session;
}

void Session::openStream(Session& parent, Http2Stream& stream) {
  resetTimer();
  fd_ = -1;
  parent_ = &parent;
  stream_ = &stream;
  peer_ = parent.peer_;
  std::memcpy(peer_text_, parent.peer_text_, sizeof peer_text_);
  peer_len_ = parent.peer_len_;
  listener_index_ = parent.listener_index_;
  secure_ = parent.secure_;
  state_ = State::ReadHead;
  readable_ = writable_ = true;
  peer_eof_ = rdhup_ = false;
  close_after_response_ = false;
  head_scanned_ = 0;
  head_started_ms_ = 0;
  accepted_ms_ = worker_.loop().nowMs();
  client_cert_checked_ = client_cert_verified_ = false;
  armClientTimer();
}

void Session::requestDrive() {
  if (in_drive_) {
    drive_again_ = true;
  } else if (!drive_deferred) {
    drive_deferred = true;
    worker_.deferDrive(this);
  }
}

void Session::runDeferredDrive() {
  drive_deferred = false;
  if (state_ != State::Closed) drive();
}

void Session::onStreamReady() {
  if (state_ == State::Closed) return;
  readable_ = writable_ = true;
  drive();
}

void Session::abortStream() {
  stream_ = nullptr;
  close();
}

}  // namespace portico::proxy
