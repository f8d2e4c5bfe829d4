#include "upstream/http2_client.hpp"

#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "http/header.hpp"
#include "http/local_reply.hpp"
#include "http/nghttp2_glue.hpp"
#include "upstream/connection.hpp"

namespace portico::upstream {
namespace {

constexpr size_t kStreamBuffer = 256 * 1024;  // request body waiting, per stream
constexpr size_t kMaxPendingOutput = 256 * 1024;

}  // namespace

struct Http2ClientConnection::Callbacks {
  static Http2ClientConnection& self(void* user_data) {
    return *static_cast<Http2ClientConnection*>(user_data);
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name_data,
                      size_t name_len, const uint8_t* value_data, size_t value_len, uint8_t,
                      void* user_data) {
    Http2ClientStream* stream = self(user_data).byId(frame->hd.stream_id);
    if (stream == nullptr) return 0;
    std::string_view name(reinterpret_cast<const char*>(name_data), name_len);
    std::string_view value(reinterpret_cast<const char*>(value_data), value_len);
    if (name == ":status") {
      stream->status.assign(value);
      return 0;
    }
    if (name.starts_with(':')) return 0;
    if (!stream->head_done && name == "content-length") {
      // Kept apart: a gRPC answer's trailers need the chunked form, whatever its length.
      stream->has_length = true;
      stream->content_length.assign(value);
      return 0;
    }
    if (!stream->head_done && name == "content-type") {
      stream->grpc_response = http::isGrpcContentType(value);
    }
    stream->fields.append(name);
    stream->fields.append(": ");
    stream->fields.append(value);
    stream->fields.append("\r\n");
    return 0;
  }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame*, void* user_data) {
    self(user_data).header_block_open_ = true;
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Http2ClientConnection& c = self(user_data);
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_PUSH_PROMISE) {
      c.header_block_open_ = false;  // (called once the block's last CONTINUATION is in)
    }
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      c.goaway_ = true;  // no new streams; those it accepted finish
      return 0;
    }
    Http2ClientStream* stream = c.byId(frame->hd.stream_id);
    if (stream == nullptr) return 0;
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (!stream->head_done) {
        if (!stream->status.empty() && stream->status[0] == '1') {
          stream->status.clear();  // an interim response: the final one follows
          stream->fields.clear();
          return 0;
        }
        c.buildResponseHead(*stream, end_stream);
      } else if (stream->chunked_response) {
        // Trailers become the chunked body's trailer section.
        stream->response.append("0\r\n");
        stream->response.append(stream->fields);
        stream->response.append("\r\n");
        stream->chunked_response = false;
      }
      stream->fields.clear();
      c.markReady(*stream);
    } else if (frame->hd.type == NGHTTP2_DATA && end_stream && stream->chunked_response) {
      stream->response.append("0\r\n\r\n");
      stream->chunked_response = false;
      c.markReady(*stream);
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                         const uint8_t* data, size_t len, void* user_data) {
    Http2ClientConnection& c = self(user_data);
    Http2ClientStream* stream = c.byId(stream_id);
    if (stream == nullptr || stream->conn == nullptr) {
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    if (stream->chunked_response) http::appendChunkHead(stream->response, len);
    stream->response.append(std::string_view(reinterpret_cast<const char*>(data), len));
    if (stream->chunked_response) stream->response.append("\r\n");
    stream->unacknowledged += len;
    c.markReady(*stream);
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
    Http2ClientConnection& c = self(user_data);
    Http2ClientStream* stream = c.byId(stream_id);
    if (stream == nullptr) return 0;
    stream->closed = true;
    c.by_id_.erase(stream_id);
    if (stream->conn == nullptr) {
      c.streams_.erase(std::find_if(c.streams_.begin(), c.streams_.end(),
                                    [&](const auto& s) { return s.get() == stream; }));
    } else {
      c.markReady(*stream);  // it reads what is left, then the end
    }
    return 0;
  }

  static ssize_t readBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
    Http2ClientConnection& c = self(user_data);
    Http2ClientStream* stream = c.byId(stream_id);
    if (stream == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    bool made_room = false;
    ssize_t n = http::readBodyForData(stream->body, stream->request_ended, stream->deferred,
                                      buf, length, data_flags, made_room);
    if (made_room && stream->session_blocked) {
      stream->session_blocked = false;
      c.markReady(*stream);
    }
    if ((*data_flags & NGHTTP2_DATA_FLAG_EOF) != 0 && !stream->trailers.empty() &&
        stream->chunked.done()) {
      // The request ends with its trailers' HEADERS frame instead of this DATA frame.
      if (!http::submitTrailerLines(c.session_, stream_id, stream->trailers)) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      }
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return n;
  }
};

Http2ClientConnection::Http2ClientConnection(Host& host, EndpointPool& pool)
    : host_(host), pool_(pool) {}

Http2ClientConnection::~Http2ClientConnection() {
  // Unlike sessions and HTTP/1.1 connections, which are recycled, this object is freed: no
  // timer entry may outlive it.
  host_.loop().forget(*this);
  if (session_ != nullptr) nghttp2_session_del(session_);
  tls_.close();
  if (fd_ >= 0) ::close(fd_);
}

bool Http2ClientConnection::open(uint64_t connect_timeout_ms) {
  fd_ = net::startConnect(pool_.address);
  if (fd_ < 0) return false;
  if (!host_.loop().add(fd_, this)) {
    int saved = errno;
    ::close(fd_);
    fd_ = -1;
    errno = saved;
    return false;
  }
  in_.reserve(32 * 1024);
  out_.reserve(16 * 1024);
  state_ = State::Connecting;
  host_.loop().setTimeout(*this, connect_timeout_ms);
  // The session exists from the start: requests submitted now are sent once connected.
  if (!startSession()) {
    fail("cannot start an HTTP/2 session");
    return true;  // the streams attached later see the failure as an end
  }
  return true;
}

bool Http2ClientConnection::startSession() {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, Callbacks::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, Callbacks::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, Callbacks::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, Callbacks::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, Callbacks::onStreamClose);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);  // acknowledged as sessions take it
  int rc = nghttp2_session_client_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rc != 0) return false;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamBuffer)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(4 * kStreamBuffer));
  return true;
}

bool Http2ClientConnection::hasRoom() const {
  if (state_ == State::Closed || goaway_ || session_ == nullptr) return false;
  uint32_t limit = nghttp2_session_get_remote_settings(session_,
                                                        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() < std::min<uint32_t>(limit, 1000);
}

Http2ClientStream* Http2ClientConnection::byId(int32_t id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

void Http2ClientConnection::attach(Connection& conn) {
  auto stream = std::make_unique<Http2ClientStream>();
  stream->conn = &conn;
  stream->closed = state_ == State::Closed;
  conn.h2 = this;
  conn.h2_stream = stream.get();
  conn.connecting = false;
  conn.writable = true;
  conn.readable = stream->closed;
  streams_.push_back(std::move(stream));
}

void Http2ClientConnection::release(Connection& conn) {
  Http2ClientStream* stream = conn.h2_stream;
  conn.h2 = nullptr;
  conn.h2_stream = nullptr;
  if (stream == nullptr) return;
  stream->conn = nullptr;
  ready_.erase(std::remove(ready_.begin(), ready_.end(), stream), ready_.end());
  if (stream->submitted && !stream->closed && header_block_open_) {
    // A header block the upstream began and never ended: nothing but its CONTINUATION may come
    // on this connection, so every stream on it is stuck (found by the fault matrix).
    fail("a header block was never finished");
    return;
  }
  if (stream->unacknowledged > 0 && session_ != nullptr) {
    giveBackWindow(*stream, stream->unacknowledged);  // what was received and never read
    stream->unacknowledged = 0;
  }
  if (stream->submitted && !stream->closed && session_ != nullptr) {
    // Not finished (a client gone, a timeout): the upstream can stop working on it.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->id, NGHTTP2_CANCEL);
    requestFlush();
    return;  // erased when nghttp2 closes it
  }
  if (stream->submitted && !stream->closed) return;
  by_id_.erase(stream->id);
  streams_.erase(std::find_if(streams_.begin(), streams_.end(),
                              [&](const auto& s) { return s.get() == stream; }));
}

ssize_t Http2ClientConnection::write(Connection& conn, const iovec* iov, int count) {
  Http2ClientStream& stream = *conn.h2_stream;
  if (stream.closed) {
    errno = EPIPE;
    return -1;
  }
  size_t taken = 0;
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  for (int i = 0; i < count; ++i) {
    const char* data = static_cast<const char*>(iov[i].iov_base);
    const size_t size = iov[i].iov_len;
    size_t at = 0;
    if (!stream.submitted) {
      // The head the session built; it comes whole in practice, but is gathered if not.
      stream.head.append(std::string_view(data, size));
      size_t head_end = 0;
      http::ParseError error = http::ParseError::None;
      auto status = http::findHeadEnd(stream.head.data(), stream.head.size(), stream.head_scanned,
                                      head_end, error);
      if (status == http::ParseStatus::Incomplete) {
        taken += size;
        continue;
      }
      const size_t before = stream.head.size() - size;  // head bytes from earlier writes
      if (status == http::ParseStatus::Error || !submit(stream, head_end)) {
        errno = EPROTO;
        return -1;
      }
      at = head_end - before;
    }
    size_t n = at < size ? takeBody(stream, data + at, size - at) : 0;
    taken += at + n;
    if (at + n < size) break;
  }
  if (taken < total) stream.session_blocked = true;
  if (stream.deferred && !stream.body.empty() && stream.id > 0) {
    stream.deferred = false;
    nghttp2_session_resume_data(session_, stream.id);
  }
  requestFlush();
  if (taken == 0) {
    errno = EAGAIN;
    return -1;
  }
  return static_cast<ssize_t>(taken);
}

bool Http2ClientConnection::submit(Http2ClientStream& stream, size_t head_end) {
  http::RequestHead head;
  http::ParseError error = http::ParseError::None;
  http::RequestLimits limits{1024 * 1024, 1024 * 1024, 1024};
  if (http::parseRequestHead(stream.head.data(), head_end, limits, head, error) !=
      http::ParseStatus::Complete) {
    return false;
  }
  std::vector<nghttp2_nv> fields;
  fields.reserve(head.headers.size() + 4);
  fields.push_back(http::nghttp2Field(":method", head.method));
  fields.push_back(http::nghttp2Field(":scheme", pool_.tls ? std::string_view("https") : "http"));
  fields.push_back(http::nghttp2Field(":authority", head.host));
  fields.push_back(http::nghttp2Field(":path", head.target));
  for (const auto& h : head.headers) {
    // RFC 9113 §8.2.2: the one TE an HTTP/2 request may carry is "trailers".
    const bool te_trailers =
        h.name.size() == 2 && http::equalsIgnoreCase(h.name, "te") && h.value == "trailers";
    if ((http::isHopByHop(h.name) && !te_trailers) || http::equalsIgnoreCase(h.name, "host")) {
      continue;
    }
    char* name = const_cast<char*>(h.name.data());  // lowercased in place (RFC 9113 §8.2.1)
    for (size_t i = 0; i < h.name.size(); ++i) name[i] = http::asciiLower(name[i]);
    fields.push_back(http::nghttp2Field(h.name, h.value));
  }
  stream.framing = head.framing;
  stream.head_request = head.method == "HEAD";
  stream.remaining = head.content_length;
  stream.request_ended = head.framing == http::BodyFraming::None ||
                         (head.framing == http::BodyFraming::Length && head.content_length == 0);
  nghttp2_data_provider provider{};
  provider.read_callback = Callbacks::readBody;
  int32_t id = nghttp2_submit_request(session_, nullptr, fields.data(), fields.size(),
                                      stream.request_ended ? nullptr : &provider, nullptr);
  if (id < 0) return false;
  stream.id = id;
  stream.submitted = true;
  by_id_[id] = &stream;
  // Any bytes after the head are the body: the caller takes them from its own buffer.
  stream.head.clear();
  return true;
}

size_t Http2ClientConnection::takeBody(Http2ClientStream& stream, const char* data, size_t size) {
  size_t taken = 0;
  while (taken < size && !stream.request_ended && stream.body.size() < kStreamBuffer) {
    size_t n = std::min(size - taken, kStreamBuffer - stream.body.size());
    if (stream.framing == http::BodyFraming::Chunked) {
      stream.decoded.clear();
      auto r = stream.chunked.feed(data + taken, n, &stream.decoded, &stream.trailers);
      if (r.error) return size;  // the session validated it already
      stream.body.append(stream.decoded);
      n = r.consumed;
      if (stream.chunked.done()) stream.request_ended = true;
    } else {
      n = static_cast<size_t>(std::min<uint64_t>(n, stream.remaining));
      stream.body.append(std::string_view(data + taken, n));
      stream.remaining -= n;
      if (stream.remaining == 0) stream.request_ended = true;
    }
    taken += n;
    if (n == 0) break;
  }
  if (stream.request_ended && stream.deferred && stream.id > 0) {
    stream.deferred = false;
    nghttp2_session_resume_data(session_, stream.id);
  }
  return stream.request_ended ? size : taken;
}

ssize_t Http2ClientConnection::read(Connection& conn, void* data, size_t size) {
  Http2ClientStream& stream = *conn.h2_stream;
  size_t n = std::min(size, stream.response.size());
  if (n == 0) {
    if (stream.closed) return 0;
    errno = EAGAIN;
    return -1;
  }
  std::memcpy(data, stream.response.data(), n);
  stream.response.consume(n);
  if (stream.response.empty()) stream.response.clear();
  // Framing bytes only make the buffer larger than its DATA: never more is given back.
  size_t buffered = stream.response.size();
  if (stream.unacknowledged > buffered) {
    giveBackWindow(stream, stream.unacknowledged - buffered);
    stream.unacknowledged = buffered;
  }
  return static_cast<ssize_t>(n);
}

void Http2ClientConnection::giveBackWindow(Http2ClientStream& stream, size_t bytes) {
  // A stream that has ended has no window of its own any more, but the connection's still
  // counts its bytes: without this, every response that ends before it is read shrinks the
  // connection's window for good, until the upstream can send nothing (found by the
  // transcoding benchmark: small unary answers stalled a connection after ~14,000 calls).
  if (stream.closed) {
    nghttp2_session_consume_connection(session_, bytes);
  } else {
    nghttp2_session_consume(session_, stream.id, bytes);
  }
  requestFlush();
}

void Http2ClientConnection::buildResponseHead(Http2ClientStream& stream, bool end_stream) {
  int status = std::atoi(stream.status.c_str());
  Buffer& out = stream.response;
  out.append("HTTP/1.1 ");
  out.append(stream.status);
  out.append(' ');
  out.append(http::reasonPhrase(status));
  out.append("\r\n");
  out.append(stream.fields);
  // A HEAD response passes on the length it was given, or none: "0" would be a false claim
  // about the resource (review L7).
  const bool bodiless = status == 204 || status == 304 || stream.head_request;
  // A gRPC answer that says its length still ends with trailers, which only the chunked form
  // carries (a trailers-only one has no body: "0" is true of it).
  const bool keeps_length = stream.has_length && !(stream.grpc_response && !end_stream);
  if (keeps_length) {
    out.append("Content-Length: ");
    out.append(stream.content_length);
    out.append("\r\n");
  } else if (!bodiless) {
    if (end_stream) {
      out.append("Content-Length: 0\r\n");
    } else {
      out.append("Transfer-Encoding: chunked\r\n");
      stream.chunked_response = true;
    }
  }
  out.append("\r\n");
  stream.head_done = true;
}

void Http2ClientConnection::markReady(Http2ClientStream& stream) {
  if (stream.conn == nullptr) return;
  if (std::find(ready_.begin(), ready_.end(), &stream) == ready_.end()) ready_.push_back(&stream);
}

void Http2ClientConnection::notifyReady() {
  if (notifying_) return;
  notifying_ = true;
  while (!ready_.empty()) {
    Http2ClientStream* stream = ready_.front();
    ready_.erase(ready_.begin());
    Connection* conn = stream->conn;
    if (conn == nullptr || conn->owner == nullptr) continue;
    conn->readable = conn->writable = true;
    conn->owner->onUpstreamEvents(*conn, EPOLLIN | EPOLLOUT);  // may release the stream
  }
  notifying_ = false;
}

void Http2ClientConnection::requestFlush() {
  if (!flush_deferred) {
    flush_deferred = true;
    host_.deferFlush(*this);
  }
}

void Http2ClientConnection::onEvents(uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & EPOLLOUT) writable_ = true;
  if (state_ == State::Connecting) {
    if (!writable_ && !readable_) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || !writable_) {
      fail("connection refused");
      return;
    }
    if (pool_.tls) {
      if (!tls_.connect(*pool_.tls, fd_, pool_.tls_host)) {
        fail("cannot set up TLS");
        return;
      }
      state_ = State::Handshaking;
    } else {
      state_ = State::Ready;
    }
  }
  if (state_ == State::Handshaking) {
    switch (tls_.handshake()) {
      case tls::Stream::Handshake::WantIo:
        readable_ = writable_ = false;
        return;
      case tls::Stream::Handshake::Failed:
        LOG_WARN("upstream endpoint %s: TLS handshake failed: %s", pool_.key.c_str(),
                 tls_.failure().c_str());
        fail("TLS handshake failed");
        return;
      case tls::Stream::Handshake::Done:
        if (tls_.alpn() != "h2") {
          LOG_WARN("upstream endpoint %s: did not agree to HTTP/2 (ALPN)", pool_.key.c_str());
          fail("no h2 in ALPN");
          return;
        }
        state_ = State::Ready;
        writable_ = readable_ = true;  // records may have come with the last flight
        break;
    }
  }
  if (state_ == State::Ready) {
    host_.loop().clearTimeout(*this);
    flush();
  }
}

void Http2ClientConnection::onTimer() {
  if (state_ == State::Connecting || state_ == State::Handshaking) {
    fail("connect timed out");
  } else if (streams_.empty()) {
    fail("idle");  // nothing asked of it for the pool's idle timeout
  }
}

bool Http2ClientConnection::readSocket() {
  bool progress = false;
  while (readable_) {
    if (in_.writable() < 4096) in_.compact();
    if (in_.writable() == 0) in_.reserve(in_.capacity() * 2);
    ssize_t n = tls_.active() ? tls_.read(in_.writePtr(), in_.writable())
                              : ::read(fd_, in_.writePtr(), in_.writable());
    if (n > 0) {
      in_.commit(static_cast<size_t>(n));
      ssize_t used = nghttp2_session_mem_recv(
          session_, reinterpret_cast<const uint8_t*>(in_.data()), in_.size());
      if (used < 0) {
        fail("protocol error");
        return false;
      }
      in_.consume(static_cast<size_t>(used));
      progress = true;
      continue;
    }
    if (n == 0) {
      fail("closed by the upstream");
      return false;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
    } else if (errno != EINTR) {
      fail("read error");
      return false;
    }
  }
  return progress;
}

bool Http2ClientConnection::writeSocket() {
  while (out_.size() < kMaxPendingOutput) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      fail("protocol error");
      return false;
    }
    if (n == 0) break;
    out_.append(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
  }
  while (!out_.empty() && writable_) {
    iovec iov{out_.data(), out_.size()};
    ssize_t n = tls_.active() ? tls_.writev(&iov, 1) : ::writev(fd_, &iov, 1);
    if (n > 0) {
      out_.consume(static_cast<size_t>(n));
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      writable_ = false;
    } else if (errno != EINTR) {
      fail("write error");
      return false;
    }
  }
  if (out_.empty()) out_.clear();
  return true;
}

void Http2ClientConnection::flush() {
  flush_deferred = false;
  if (state_ != State::Ready) return;
  for (int round = 0; round < 64 && state_ == State::Ready; ++round) {
    bool progress = readSocket();
    if (state_ != State::Ready) break;
    notifyReady();
    if (!writeSocket()) break;
    notifyReady();
    // nghttp2 ended the session itself (a connection error: it sent GOAWAY and reads no more),
    // though mem_recv reported the bytes as taken: the connection is over.
    if (state_ == State::Ready && out_.empty() && !nghttp2_session_want_read(session_) &&
        !nghttp2_session_want_write(session_)) {
      fail("the HTTP/2 session ended");
      break;
    }
    if (!progress && (out_.empty() || !writable_) && !nghttp2_session_want_write(session_)) break;
    if (!progress && !writable_) break;
  }
  if (state_ == State::Ready && streams_.empty()) {
    host_.loop().setTimeout(*this, pool_.idle_timeout_ms);
  }
}

void Http2ClientConnection::fail(const char* why) {
  if (state_ == State::Closed) return;
  LOG_DEBUG("upstream endpoint %s: HTTP/2 connection ends: %s", pool_.key.c_str(), why);
  state_ = State::Closed;
  host_.loop().clearTimeout(*this);
  tls_.close();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  // Every stream still open ends here: its session reads what came, then the end.
  for (auto& stream : streams_) {
    if (!stream->closed) {
      stream->closed = true;
      markReady(*stream);
    }
  }
  by_id_.clear();
  // Streams nobody holds any more go now; the others when their sessions release them.
  streams_.erase(std::remove_if(streams_.begin(), streams_.end(),
                                [](const auto& s) { return s->conn == nullptr; }),
                 streams_.end());
  host_.http2ConnectionClosed(*this);
  notifyReady();
}

}  // namespace portico::upstream
