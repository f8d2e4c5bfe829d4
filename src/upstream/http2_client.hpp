#pragma once
// HTTP/2 to an upstream (upstreams.*.protocol: http2): a few connections per endpoint and worker,
// each carrying many requests at once (RFC 9113), h2c with prior knowledge or h2 over TLS.
//
// To the session a request looks as it does over HTTP/1.1: it gets a Connection (a "stream
// connection": no socket of its own), writes an HTTP/1.1 request into it and reads an HTTP/1.1
// response back. This class turns the one into HEADERS and DATA frames and the other back, so
// the session's relaying, timeouts and failure handling are the same code for both protocols.

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/buffer.hpp"
#include "http/http1_parser.hpp"
#include "net/event_loop.hpp"
#include "tls/stream.hpp"

using nghttp2_session = struct nghttp2_session;

namespace portico::upstream {

class Connection;
struct EndpointPool;

struct Http2ClientStream {
  Connection* conn = nullptr;  // the session's side; null once released
  int32_t id = -1;             // set when the request head has been submitted
  // --- the request, from HTTP/1.1 bytes ---
  Buffer head;
  size_t head_scanned = 0;
  bool submitted = false;
  http::BodyFraming framing = http::BodyFraming::None;
  uint64_t remaining = 0;
  http::ChunkedDecoder chunked;
  std::string decoded;
  std::string trailers;        // the chunked request's trailer section, for a HEADERS frame
  Buffer body;                 // request body waiting for DATA frames
  bool request_ended = false;
  bool head_request = false;   // HEAD: the response's length describes no body here
  bool deferred = false;
  bool session_blocked = false;
  // --- the response, as HTTP/1.1 bytes ---
  std::string status;
  std::string fields;          // "name: value\r\n"
  bool has_length = false;
  std::string content_length;  // the upstream's, when has_length
  bool grpc_response = false;  // content-type application/grpc*
  bool head_done = false;
  bool chunked_response = false;
  Buffer response;
  size_t unacknowledged = 0;
  bool closed = false;         // the stream ended (whole response, reset, or the connection)
};

class Http2ClientConnection final : public net::EventHandler, public net::Timed {
 public:
  class Host {
   public:
    virtual ~Host() = default;
    virtual net::EventLoop& loop() = 0;
    // Run flush() after the current batch of events.
    virtual void deferFlush(Http2ClientConnection& connection) = 0;
    // The connection is finished: the host removes it from its pool and frees it later.
    virtual void http2ConnectionClosed(Http2ClientConnection& connection) = 0;
  };

  Http2ClientConnection(Host& host, EndpointPool& pool);
  ~Http2ClientConnection() override;
  Http2ClientConnection(const Http2ClientConnection&) = delete;
  Http2ClientConnection& operator=(const Http2ClientConnection&) = delete;

  // Starts connecting; false (errno set) when the socket could not be made.
  bool open(uint64_t connect_timeout_ms);
  // New requests may go here: not closing, and under the upstream's stream limit.
  bool hasRoom() const;
  size_t streamCount() const { return streams_.size(); }
  EndpointPool& pool() { return pool_; }

  // A stream connection for one request; `conn` is the session's Connection object.
  void attach(Connection& conn);
  // The session is done with it; an unfinished stream is cancelled.
  void release(Connection& conn);
  ssize_t write(Connection& conn, const iovec* iov, int count);
  ssize_t read(Connection& conn, void* data, size_t size);

  void onEvents(uint32_t events) override;
  void onTimer() override;
  // Sends what nghttp2 has queued, then tells stream connections what changed.
  void flush();
  bool flush_deferred = false;

 private:
  struct Callbacks;
  enum class State : uint8_t { Connecting, Handshaking, Ready, Closed };

  bool startSession();
  bool submit(Http2ClientStream& stream, size_t head_end);
  size_t takeBody(Http2ClientStream& stream, const char* data, size_t size);
  void buildResponseHead(Http2ClientStream& stream, bool end_stream);
  // Flow control: `bytes` of the stream's DATA were taken (or dropped) by the session.
  void giveBackWindow(Http2ClientStream& stream, size_t bytes);
  void markReady(Http2ClientStream& stream);
  void notifyReady();
  bool readSocket();
  bool writeSocket();
  void fail(const char* why);
  void requestFlush();
  Http2ClientStream* byId(int32_t id);

  Host& host_;
  EndpointPool& pool_;
  int fd_ = -1;
  State state_ = State::Connecting;
  tls::Stream tls_;
  nghttp2_session* session_ = nullptr;
  bool readable_ = false;
  bool writable_ = false;
  bool goaway_ = false;
  bool header_block_open_ = false;  // a HEADERS frame came, its END_HEADERS not yet
  Buffer in_;
  Buffer out_;
  std::vector<std::unique_ptr<Http2ClientStream>> streams_;
  std::unordered_map<int32_t, Http2ClientStream*> by_id_;
  std::vector<Http2ClientStream*> ready_;
  bool notifying_ = false;
};

}  // namespace portico::upstream
