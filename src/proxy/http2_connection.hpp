#pragma once
// HTTP/2 on a downstream connection (RFC 9113), with nghttp2 doing the framing, HPACK and flow
// control. Each stream is served by a Session of its own (a "stream session"): it takes the
// request's head as fields (requestHead) and its body as bytes, and gives back the response's
// head as fields (respond) and its body as bytes. Routing, filters, upstream relaying and access
// logs are the same code for both protocols; nothing is written out as HTTP/1.1 text.
//
// Memory per stream is bounded both ways: request DATA is acknowledged (WINDOW_UPDATE) only as
// the stream session takes it, and a response is taken from the stream session only while less
// than kStreamBuffer waits to be sent, so a client that stops reading stalls its upstream rather
// than filling the gateway.

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "core/buffer.hpp"
#include "http/http1_parser.hpp"
#include "http/local_reply.hpp"

using nghttp2_session = struct nghttp2_session;

namespace portico::http {
class FieldList;
}

namespace portico::proxy {

class Session;
class Worker;
class Http2Connection;

struct Http2Stream {
  int32_t id = 0;
  size_t slot = 0;             // its place in the connection's list
  Session* session = nullptr;  // the stream session; null once it has finished
  bool closed = false;         // nghttp2 closed the stream (reset or done)

  // --- the request: its head as fields for the stream session, its body as bytes ---
  std::string method, authority, path;
  std::string field_text;  // the other fields' names and values, back to back
  struct FieldAt {
    uint32_t at, name_len, value_len;  // name at `at`, value right after it
  };
  std::vector<FieldAt> fields;   // in the order received
  std::string cookie;            // RFC 9113 §8.2.3: several cookie fields are one
  size_t header_bytes = 0;       // decoded header list size, against max_header_bytes
  bool has_content_length = false;
  bool too_large = false;        // over max_header_bytes: answered 431 by the connection
  bool chunked = false;          // no Content-Length: the body is passed on chunk-framed
  bool request_ended = false;    // END_STREAM seen
  std::string request_trailers;  // "name: value\r\n": the chunked request's trailer section
  Buffer request;
  size_t unacknowledged = 0;     // DATA bytes received and not yet given back to the window

  // --- the response: its head went out as fields (respond), its body is framed as it said ---
  bool head_submitted = false;
  http::BodyFraming framing = http::BodyFraming::None;
  uint64_t remaining = 0;
  http::ChunkedDecoder chunked_decoder;
  std::string decoded;           // scratch for de-chunking
  std::string trailers;          // the chunked body's trailer fields: a HEADERS frame after DATA
  Buffer body;                   // waiting for DATA frames
  bool response_ended = false;
  bool deferred = false;         // the data source said "nothing yet"
  bool session_blocked = false;  // the stream session waits for room in `body`
};

// An answer of the gateway's on a stream (http/local_reply.hpp): its head goes to the stream
// as fields, its body into `body_out` (the stream session's out_), which the stream then takes
// as it takes a proxied body.
class StreamReplyWriter final : public http::ReplyWriter {
 public:
  StreamReplyWriter(Http2Connection& connection, Http2Stream& stream, Buffer& body_out);
  void status(int status) override;
  void field(std::string_view name, std::string_view value) override;
  void fieldLines(std::string_view lines) override;
  void body(std::string_view body) override;
  // The stream did not take the head (it is gone, or nghttp2 refused it).
  bool failed() const { return failed_; }

 private:
  Http2Connection& connection_;
  Http2Stream& stream_;
  Buffer& body_out_;
  http::FieldList& fields_;
  bool failed_ = false;
};

class Http2Connection {
 public:
  // Upper bound of response bytes waiting per stream (and the initial stream window).
  static constexpr size_t kStreamBuffer = 256 * 1024;

  Http2Connection(Session& owner, Worker& worker, const config::Limits& limits);
  ~Http2Connection();
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  // Sends our SETTINGS. For an h2c upgrade, `upgrade_settings` is the decoded HTTP2-Settings
  // payload and `upgrade` the HTTP/1.1 request that becomes stream 1 (its fields are copied).
  bool start(std::string_view upgrade_settings = {}, const http::RequestHead* upgrade = nullptr);
  // Feeds bytes read from the client; false on a connection error (then close).
  bool receive(Buffer& in);
  // Appends frames to send to `out`, while it holds less than `limit` bytes; false on error.
  bool produce(Buffer& out, size_t limit);
  // Runs the stream sessions that have something to do; true when any ran.
  bool runReady();
  // Neither side has anything more to say: the connection can close.
  bool finished() const;
  size_t openStreams() const { return streams_.size(); }
  // Streams served by a stream session now: while there are, their timers keep watch.
  size_t activeStreamSessions() const { return active_sessions_; }
  // When the header block being received began (0: none is): it must end by the header timeout.
  uint64_t headerBlockStartedMs() const { return header_block_started_ms_; }
  // Stops taking new streams (GOAWAY); those in flight finish.
  void shutdown();
  // Cuts every stream session (the connection is closing).
  void abortAll();

  // --- for stream sessions ---
  // The stream's request head, as the HTTP/1.1 parser would give it (views into the stream,
  // valid while it lives): false, with `error` set, when a check refuses it.
  bool requestHead(const Http2Stream& stream, const http::RequestLimits& limits,
                   http::RequestHead& head, http::ParseError& error) const;
  bool hasRequestBytes(const Http2Stream& stream) const { return !stream.request.empty(); }
  ssize_t streamRead(Http2Stream& stream, void* data, size_t size);
  ssize_t streamWrite(Http2Stream& stream, const iovec* iov, int count);
  // The response head (fields from headFields(), started with startResponse), and how the
  // body the stream session then writes is framed: Length and UntilClose bytes are the body,
  // Chunked ones are de-chunked (their trailers become a HEADERS frame). False on failure.
  bool respond(Http2Stream& stream, http::FieldList& fields, http::BodyFraming framing,
               uint64_t content_length);
  // A list to fill for respond(), reused by the thread.
  static http::FieldList& headFields();
  // The stream session finished or gave up; what it sent so far stands.
  void streamSessionClosed(Http2Stream& stream);

 private:
  struct Callbacks;

  Http2Stream* find(int32_t id);
  Http2Stream& open(int32_t id);
  void startStreamSession(Http2Stream& stream);
  void detachSession(Http2Stream& stream);
  void endHeaderBlock(int32_t stream_id);
  void endRequestHead(Http2Stream& stream);
  void addField(Http2Stream& stream, std::string_view name, std::string_view value);
  size_t takeResponse(Http2Stream& stream, const char* data, size_t size);
  void acknowledge(Http2Stream& stream);
  // One field of the request's trailers (a HEADERS frame after its DATA).
  int takeTrailer(Http2Stream& stream, const uint8_t* name_data, size_t name_len,
                  const uint8_t* value_data, size_t value_len);
  void markReady(Http2Stream& stream);
  void reset(Http2Stream& stream, uint32_t error_code);
  void erase(int32_t id);
  // The owner's drive() is asked to run (now if it is not running, else once more after).
  void wakeOwner();
  // Answers the stream without a stream session (an error found while reading its headers).
  void replyLocally(Http2Stream& stream, http::ErrorCode code, std::string_view message);
  void appendPrefaceWithStreamLimit(std::string_view frames, Buffer& out);
  bool takeControlFrameToken();

  Session& owner_;
  Worker& worker_;
  const config::Limits limits_;  // a copy: the connection may outlive its config snapshot
  nghttp2_session* session_ = nullptr;
  std::vector<std::unique_ptr<Http2Stream>> streams_;  // in no order
  Http2Stream* last_found_ = nullptr;
  std::vector<int32_t> ready_;  // streams whose stream session should run
  size_t discarded_ = 0;
  size_t active_sessions_ = 0;
  int32_t header_block_stream_ = 0;
  uint64_t header_block_started_ms_ = 0;
  bool preface_sent_ = false;
  static constexpr uint32_t kControlBurst = 1000;  // SETTINGS and PING frames
  static constexpr uint32_t kControlRate = 100;    // per second
  uint32_t control_tokens_ = kControlBurst;
  uint64_t control_refill_ms_ = 0;  // DATA for streams nobody reads: given back to the window later
};

}  // namespace portico::proxy
