#pragma once
// An HTTP/1.1 connection to one upstream endpoint, owned by a worker's pool. While a request uses
// it, its socket events go to the owner (the downstream session); while idle in the pool it only
// watches for the upstream closing it.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.hpp"
#include "http/http1_parser.hpp"
#include "net/event_loop.hpp"
#include "net/socket.hpp"
#include "tls/stream.hpp"

namespace portico::tls {
class ClientContext;
}

namespace portico::upstream {

class Connection;
class Http2ClientConnection;
struct Http2ClientStream;

class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  virtual void onUpstreamEvents(Connection& conn, uint32_t events) = 0;
  virtual void onUpstreamTimeout(Connection& conn) = 0;
};

// One endpoint's connections in one worker. Persists across config reloads (keyed by address),
// so a reload does not throw away warm connections.
struct EndpointPool {
  std::string key;  // "ip:port"
  net::SocketAddress address;
  std::vector<Connection*> idle;  // most recently used last
  uint32_t open = 0;              // connections, idle or busy
  uint32_t active_requests = 0;   // for least_request
  uint64_t idle_timeout_ms = 60'000;
  std::shared_ptr<const tls::ClientContext> tls;  // set when the upstream speaks TLS
  std::string tls_host;                           // the endpoint's host as written
  bool http2 = false;                             // requests go over HTTP/2 connections
  uint64_t connect_timeout_ms = 1000;
  std::vector<std::unique_ptr<Http2ClientConnection>> h2;  // usable ones

  EndpointPool();
  ~EndpointPool();
};

class Connection final : public net::EventHandler, public net::Timed {
 public:
  class Host;  // the worker; recycles idle connections that the upstream closed

  void onEvents(uint32_t events) override;
  void onTimer() override;

  // Prepares a recycled object for a new socket.
  void reset(int fd, EndpointPool* pool, Host* host);
  void resetTimerState() { resetTimer(); }

  int fd = -1;
  EndpointPool* pool = nullptr;
  ConnectionOwner* owner = nullptr;  // null while idle in the pool
  Host* host = nullptr;
  bool connecting = false;
  bool readable = false;  // an edge said data may be waiting
  bool writable = false;
  bool eof = false;
  bool rdhup = false;     // the upstream shut down its side: read until EOF, not a short read
  bool handshaking = false;  // TCP is up, TLS is being set up
  tls::Stream tls;
  // A stream connection (fd -1): one request on a shared HTTP/2 connection.
  Http2ClientConnection* h2 = nullptr;
  Http2ClientStream* h2_stream = nullptr;
  Buffer in;
  Buffer out;
  http::ResponseHead head;  // views into `in` while the head is being processed
};

class Connection::Host {
 public:
  virtual ~Host() = default;
  // The upstream closed (or broke) an idle pooled connection.
  virtual void idleConnectionLost(Connection& conn) = 0;
};

}  // namespace portico::upstream
