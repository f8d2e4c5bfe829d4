#include "upstream/connection.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include "upstream/http2_client.hpp"

namespace portico::upstream {

EndpointPool::EndpointPool() = default;
EndpointPool::~EndpointPool() = default;

void Connection::reset(int new_fd, EndpointPool* new_pool, Host* new_host) {
  resetTimer();
  fd = new_fd;
  pool = new_pool;
  host = new_host;
  owner = nullptr;
  connecting = true;
  handshaking = false;
  readable = writable = eof = rdhup = false;
  in.clear();
  out.clear();
  if (in.capacity() == 0) in.reserve(32 * 1024);
  if (out.capacity() == 0) out.reserve(4 * 1024);
}

void Connection::onEvents(uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP)) rdhup = true;
  if (events & EPOLLOUT) writable = true;
  if (owner != nullptr) {
    owner->onUpstreamEvents(*this, events);
    return;
  }
  // Idle: an upstream says nothing unasked, so any byte, EOF or error ends the connection.
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) host->idleConnectionLost(*this);
}

void Connection::onTimer() {
  if (owner != nullptr) {
    owner->onUpstreamTimeout(*this);
  } else {
    host->idleConnectionLost(*this);  // idle too long
  }
}

}  // namespace portico::upstream
