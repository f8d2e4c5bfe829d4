#pragma once
// One TLS connection over a non-blocking socket, with the socket calls' conventions: read() and
// writev() return bytes, 0 for the peer's end, or -1 with errno (EAGAIN when the socket is not
// ready), so the HTTP code above reads the same with or without TLS.

#include <sys/types.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <string_view>

using SSL = struct ssl_st;

namespace portico::tls {

class ServerContext;
class ClientContext;

class Stream {
 public:
  enum class Handshake : uint8_t { Done, WantIo, Failed };

  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Starts the server side of a handshake on `fd`; false when OpenSSL could not.
  bool accept(const ServerContext& context, int fd);
  // Starts the client side of a handshake with `host` (the name sent and verified).
  bool connect(const ClientContext& context, int fd, std::string_view host);
  // Why the last handshake failed ("certificate verify failed: ...").
  const std::string& failure() const { return failure_; }
  bool active() const { return ssl_ != nullptr; }
  Handshake handshake();
  ssize_t read(void* data, size_t size);
  ssize_t writev(const iovec* iov, int count);
  // The last read stopped because TLS had to write first: retry it when the socket is writable.
  bool readWantsWrite() const { return read_wants_write_; }
  // The negotiated ALPN protocol ("h2", "http/1.1") or empty.
  std::string_view alpn() const;
  SSL* ssl() const { return ssl_.get(); }
  // Sends close_notify when the connection is healthy (best effort, once).
  void sendCloseNotify();
  // sendCloseNotify(), then frees the state.
  void close();

 private:
  struct SslDeleter {
    void operator()(SSL* ssl) const;
  };
  std::unique_ptr<SSL, SslDeleter> ssl_;
  bool failed_ = false;
  bool read_wants_write_ = false;
  std::string failure_;
};

}  // namespace portico::tls
