#pragma once
// Thin helpers over BSD sockets: numeric addresses, listening with SO_REUSEPORT, non-blocking
// connect, and an owning fd.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace portico::net {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  // The address as 16 bytes, IPv4 mapped into ::ffff:0:0/96 (for CIDR checks).
  std::array<uint8_t, 16> asV6Bytes() const;
  // "192.0.2.1" or "2001:db8::1" (no port); writes into buf, returns the length.
  size_t formatHost(char* buf, size_t size) const;
  uint16_t port() const;
};

// Numeric host + port -> address. False when host is not a numeric IPv4/IPv6 address.
bool parseNumericAddress(std::string_view host, uint16_t port, SocketAddress& out);
// Resolves a name (or numeric host) with getaddrinfo; blocking, for load time only.
bool resolveAddress(const std::string& host, uint16_t port, SocketAddress& out, std::string& error);

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A non-blocking listening socket with SO_REUSEADDR and (when reuse_port) SO_REUSEPORT.
UniqueFd listenOn(const SocketAddress& address, bool reuse_port, std::string& error);
// Starts a non-blocking connect. Returns the fd (connect in progress or done) or -1 with errno.
int startConnect(const SocketAddress& address);
void setNoDelay(int fd);

}  // namespace portico::net
