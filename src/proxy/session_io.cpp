// The client side's bytes: through TLS or not, or through an HTTP/2 stream for a stream
// session; reading with backpressure, writing from the buffers the bytes are in, and closing
// gently after an error.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "core/buffer_pool.hpp"
#include "proxy/http2_connection.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "tls/server_context.hpp"

namespace portico::proxy {
namespace {

constexpr size_t kLingerBytes = 1024 * 1024;  // what a lingering close reads at most

}  // namespace

bool Session::continueHandshake() {
  if (!readable_ && !writable_) return false;
  switch (tls_.handshake()) {
    case tls::Stream::Handshake::Done:
      tls_context_.reset();
      state_ = State::ReadHead;
      // The request may have come with the client's last handshake flight and sit decrypted
      // in OpenSSL already: no new edge would announce it.
      readable_ = true;
      if (tls_.alpn() == "h2") startHttp2();
      return true;
    case tls::Stream::Handshake::WantIo:
      readable_ = writable_ = false;  // the next event says which one is ready
      return false;
    case tls::Stream::Handshake::Failed:
      close();
      return false;
  }
  return false;
}

ssize_t Session::readSocket(void* data, size_t size) {
  if (parent_ != nullptr) {
    if (stream_ == nullptr) return 0;
    return parent_->h2_->streamRead(*stream_, data, size);
  }
  return tls_.active() ? tls_.read(data, size) : ::read(fd_, data, size);
}

ssize_t Session::writeSocket(const iovec* iov, int count) {
  if (parent_ != nullptr) {
    if (stream_ == nullptr) {
      errno = EPIPE;
      return -1;
    }
    return parent_->h2_->streamWrite(*stream_, iov, count);
  }
  return tls_.active() ? tls_.writev(iov, count) : ::writev(fd_, iov, count);
}

const tls::PeerCertificate* Session::clientCertificate() {
  if (parent_ != nullptr) return parent_->clientCertificate();
  if (!tls_.active()) return nullptr;
  if (!client_cert_checked_) {
    client_cert_checked_ = true;
    if (!client_cert_) client_cert_ = std::make_unique<tls::PeerCertificate>();
    client_cert_verified_ = tls::verifiedPeerCertificate(tls_.ssl(), *client_cert_);
  }
  return client_cert_verified_ ? client_cert_.get() : nullptr;
}

bool Session::readClient() {
  if (!readable_ || peer_eof_) return false;
  if (state_ == State::Flush) {
    // Read and drop what the client still sends, so closing does not reset the connection
    // before it has read our last response.
    char sink[4096];
    ssize_t n = readSocket(sink, sizeof sink);
    if (n == 0) peer_eof_ = true;
    if (n <= 0) readable_ = false;
    if (lingering_) {
      linger_bytes_ += n > 0 ? static_cast<size_t>(n) : 0;
      // Enough to let a client finish a body in flight, not to keep a flood going.
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || linger_bytes_ > kLingerBytes) {
        close();
      }
    }
    return n > 0;
  }
  if (stream_ != nullptr && !parent_->h2_->hasRequestBytes(*stream_)) {
    readable_ = false;  // and no buffer is taken for a request without a body
    return false;
  }
  if (in_.capacity() == 0) in_ = takeBuffer(kInBuffer);
  if (in_.writable() < 1024) in_.compact();
  if (in_.writable() == 0) {
    size_t limit = state_ == State::ReadHead ? listener().limits.max_header_bytes + 1024
                                             : kMaxBodyBuffer;
    if (in_.capacity() < limit) in_.reserve(std::min(in_.capacity() * 2, limit));
  }
  size_t want = in_.writable();
  if (want == 0) return false;  // backpressure: readable_ stays set for when there is room
  ssize_t n = readSocket(in_.writePtr(), want);
  if (n > 0) {
    in_.commit(static_cast<size_t>(n));
    // A short read drained the socket, unless TLS holds more decrypted records than it gave.
    if (static_cast<size_t>(n) < want && !rdhup_ && !tls_.active()) readable_ = false;
    return true;
  }
  if (n == 0) {
    peer_eof_ = true;
    readable_ = false;
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    readable_ = false;
    return false;
  }
  if (errno == EINTR) return true;
  close();
  return false;
}

bool Session::writeClient() {
  if (!writable_) return false;
  iovec iov[2];
  int count = 0;
  if (!out_.empty()) iov[count++] = {out_.data(), out_.size()};
  size_t body = (state_ == State::Proxy && rq_->up != nullptr) ? responseBodyReady() : 0;
  if (body > 0) iov[count++] = {rq_->up->in.data(), body};
  if (count == 0) {
    if (state_ == State::Flush) finishFlush();
    return false;
  }
  size_t total = (count == 2 ? iov[0].iov_len + iov[1].iov_len : iov[0].iov_len);
  ssize_t n = writeSocket(iov, count);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      writable_ = false;
      return false;
    }
    if (errno == EINTR) return true;
    close();
    return false;
  }
  size_t written = static_cast<size_t>(n);
  if (rq_) rq_->bytes_out += written;
  size_t from_out = std::min(written, out_.size());
  out_.consume(from_out);
  if (written > from_out) consumeResponseBody(written - from_out);
  if (written < total) writable_ = false;
  if (state_ == State::Flush && out_.empty()) finishFlush();
  return true;
}

void Session::finishFlush() {
  if (!linger_ || parent_ != nullptr) {
    close();
    return;
  }
  if (lingering_) return;
  // Our last bytes are out. Closing now, with the client's bytes unread, would answer them with
  // a reset, which can destroy our response in the client's buffers before it reads it: send
  // FIN instead and read (and drop) what still comes, for a moment (NGINX's lingering close).
  lingering_ = true;
  linger_bytes_ = 0;
  tls_.sendCloseNotify();
  ::shutdown(fd_, SHUT_WR);
  readable_ = true;
}

}  // namespace portico::proxy
