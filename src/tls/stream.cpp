#include "tls/stream.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

#include "tls/client_context.hpp"
#include "tls/server_context.hpp"

namespace portico::tls {
namespace {

// One TLS record's worth: small pieces (a response head and its body) are sent as one record.
constexpr size_t kCoalesceBytes = 16 * 1024;

}  // namespace

void Stream::SslDeleter::operator()(SSL* ssl) const { SSL_free(ssl); }

Stream::Stream() = default;
Stream::~Stream() = default;

bool Stream::accept(const ServerContext& context, int fd) {
  ssl_.reset(context.newConnection());
  failed_ = read_wants_write_ = false;
  if (!ssl_ || SSL_set_fd(ssl_.get(), fd) != 1) {
    ERR_clear_error();
    ssl_.reset();
    return false;
  }
  SSL_set_accept_state(ssl_.get());
  return true;
}

bool Stream::connect(const ClientContext& context, int fd, std::string_view host) {
  ssl_.reset(context.newConnection(host));
  failed_ = read_wants_write_ = false;
  if (!ssl_ || SSL_set_fd(ssl_.get(), fd) != 1) {
    ERR_clear_error();
    ssl_.reset();
    return false;
  }
  SSL_set_connect_state(ssl_.get());
  return true;
}

Stream::Handshake Stream::handshake() {
  int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) return Handshake::Done;
  int error = SSL_get_error(ssl_.get(), rc);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return Handshake::WantIo;
  failed_ = true;
  long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    failure_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  } else if (unsigned long code = ERR_peek_last_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    failure_ = text;
  } else {
    failure_ = error == SSL_ERROR_SYSCALL ? "connection closed during the handshake"
                                          : "handshake failed";
  }
  ERR_clear_error();
  return Handshake::Failed;
}

ssize_t Stream::read(void* data, size_t size) {
  size_t n = 0;
  read_wants_write_ = false;
  if (SSL_read_ex(ssl_.get(), data, size, &n) == 1) return static_cast<ssize_t>(n);
  switch (SSL_get_error(ssl_.get(), 0)) {
    case SSL_ERROR_WANT_WRITE:
      read_wants_write_ = true;
      [[fallthrough]];
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:  // close_notify, or a plain TCP end (IGNORE_UNEXPECTED_EOF)
      return 0;
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      ERR_clear_error();
      if (errno == 0) return 0;
      return -1;
    default:
      failed_ = true;
      ERR_clear_error();
      errno = EPROTO;
      return -1;
  }
}

ssize_t Stream::writev(const iovec* iov, int count) {
  char staging[kCoalesceBytes];
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  iovec single;
  if (count > 1 && total <= sizeof staging) {
    size_t at = 0;
    for (int i = 0; i < count; ++i) {
      std::memcpy(staging + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
    single = {staging, total};
    iov = &single;
    count = 1;
  }
  // With partial writes on, SSL_write returns after each record; keep going until the socket
  // is full, so that a short count means what it means for writev: wait for EPOLLOUT.
  size_t written = 0;
  for (int i = 0; i < count; ++i) {
    const char* data = static_cast<const char*>(iov[i].iov_base);
    size_t left = iov[i].iov_len;
    while (left > 0) {
      size_t n = 0;
      if (SSL_write_ex(ssl_.get(), data, left, &n) == 1) {
        written += n;
        data += n;
        left -= n;
        continue;
      }
      int error = SSL_get_error(ssl_.get(), 0);
      if (error != SSL_ERROR_WANT_WRITE && error != SSL_ERROR_WANT_READ) {
        failed_ = true;
        ERR_clear_error();
        if (written > 0) return static_cast<ssize_t>(written);
        if (errno == 0 || errno == EAGAIN) errno = EPIPE;
        return -1;
      }
      if (written > 0) return static_cast<ssize_t>(written);
      errno = EAGAIN;
      return -1;
    }
  }
  return static_cast<ssize_t>(written);
}

std::string_view Stream::alpn() const {
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &proto, &len);
  return proto == nullptr ? std::string_view()
                          : std::string_view(reinterpret_cast<const char*>(proto), len);
}

void Stream::sendCloseNotify() {
  if (!ssl_ || failed_ || !SSL_is_init_finished(ssl_.get())) return;
  if ((SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) == 0) {
    SSL_shutdown(ssl_.get());  // one non-blocking attempt: our close_notify, not theirs
  }
  ERR_clear_error();
}

void Stream::close() {
  if (!ssl_) return;
  sendCloseNotify();
  ssl_.reset();
}

}  // namespace portico::tls
