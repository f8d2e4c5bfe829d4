#include "proxy/http2_connection.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "http/chars.hpp"
#include "http/header.hpp"
#include "http/nghttp2_glue.hpp"
#include "http/local_reply.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {
namespace {

constexpr std::string_view kChunkEnd = "0\r\n\r\n";

}  // namespace

// nghttp2 calls back into C functions; these forward to the connection.
struct Http2Connection::Callbacks {
  static Http2Connection& self(void* user_data) {
    return *static_cast<Http2Connection*>(user_data);
  }

  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                            void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Http2Connection& c = self(user_data);
    // One header block at a time (RFC 9113 §6.10): it gets the header timeout, not the idle one.
    c.header_block_stream_ = frame->hd.stream_id;
    c.header_block_started_ms_ = c.worker_.loop().nowMs();
    if (c.streams_.size() >= c.limits_.http2_max_concurrent_streams) {
      // RFC 9113 §5.1.2: a stream over the advertised limit is a stream error, not the end of
      // the connection. (nghttp2 itself would end the connection, so the limit is ours.)
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    c.open(frame->hd.stream_id);
    return 0;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name_data,
                      size_t name_len, const uint8_t* value_data, size_t value_len, uint8_t,
                      void* user_data) {
    Http2Connection& c = self(user_data);
    Http2Stream* stream = c.find(frame->hd.stream_id);
    if (stream == nullptr || stream->too_large) return 0;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
      return c.takeTrailer(*stream, name_data, name_len, value_data, value_len);
    // RFC 9113 §6.5.2's accounting (32 bytes per field). Past the limit nothing more is kept
    // (an HPACK bomb decodes into nothing) and the answer is 431, as over HTTP/1.1.
    stream->header_bytes += name_len + value_len + 32;
    if (stream->header_bytes > c.limits_.max_header_bytes) {
      stream->too_large = true;
      std::string().swap(stream->field_text);
      std::vector<Http2Stream::FieldAt>().swap(stream->fields);
      std::string().swap(stream->cookie);
      return 0;
    }
    std::string_view name(reinterpret_cast<const char*>(name_data), name_len);
    std::string_view value(reinterpret_cast<const char*>(value_data), value_len);
    // nghttp2 passes on only names that are lowercase tokens (others it ignores or refuses):
    // the value is what is checked again.
    if (!http::isValidHttp2Value(value)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (name.starts_with(':')) {
      // (:scheme is not kept: the listener says whether the connection is TLS.)
      if (name == ":method") {
        stream->method.assign(value);
      } else if (name == ":authority") {
        stream->authority.assign(value);
      } else if (name == ":path") {
        stream->path.assign(value);
      }
      return 0;
    }
    if (name == "host") {
      if (stream->authority.empty()) stream->authority.assign(value);
      return 0;
    }
    if (name == "cookie") {
      if (!stream->cookie.empty()) stream->cookie.append("; ");
      stream->cookie.append(value);
      return 0;
    }
    // te is only ever "trailers" here (nghttp2 checks): kept, so that an HTTP/2 upstream learns
    // the client takes trailers. Expect is answered by nobody in HTTP/2.
    if (name == "expect") return 0;
    if (name == "content-length") stream->has_content_length = true;
    c.addField(*stream, name, value);
    return 0;
  }

  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                         void* user_data) {
    Http2Connection& c = self(user_data);
    if ((frame->hd.type == NGHTTP2_SETTINGS || frame->hd.type == NGHTTP2_PING) &&
        (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && !c.takeControlFrameToken()) {
      // Each of these makes us answer; a client sending them by the thousand (and not reading
      // the answers) only wants to keep us busy: RFC 9113 §10.5, ENHANCE_YOUR_CALM.
      nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS) c.endHeaderBlock(frame->hd.stream_id);
    Http2Stream* stream = c.find(frame->hd.stream_id);
    if (stream == nullptr) return 0;
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      stream->request_ended = end_stream;
      if (stream->too_large) {
        c.replyLocally(*stream, http::ErrorCode::HeadersTooLarge,
                       "request header section too large");
        return 0;
      }
      c.endRequestHead(*stream);
      return 0;
    }
    if (end_stream && !stream->request_ended) {
      stream->request_ended = true;
      if (stream->chunked && !stream->request_trailers.empty()) {
        // The trailers ride in the chunked coding's trailer section.
        stream->request.append("0\r\n");
        stream->request.append(stream->request_trailers);
        stream->request.append("\r\n");
        std::string().swap(stream->request_trailers);
      } else if (stream->chunked) {
        stream->request.append(kChunkEnd);
      }
      c.markReady(*stream);
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user_data) {
    Http2Connection& c = self(user_data);
    Http2Stream* stream = c.find(stream_id);
    if (stream == nullptr || stream->session == nullptr) {
      c.discarded_ += len;  // nobody will read it: give the window back anyway
      return 0;
    }
    if (stream->chunked) http::appendChunkHead(stream->request, len);
    stream->request.append(std::string_view(reinterpret_cast<const char*>(data), len));
    if (stream->chunked) stream->request.append("\r\n");
    stream->unacknowledged += len;
    c.markReady(*stream);
    return 0;
  }

  // RFC 9113 §8.1: a response complete before its request is may end the request with
  // RST_STREAM(NO_ERROR). Without it, a client that never ends its side would keep the stream,
  // and its buffers, for as long as the connection lives.
  static int onFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0 ||
        (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)) {
      return 0;
    }
    Http2Stream* stream = self(user_data).find(frame->hd.stream_id);
    if (stream != nullptr && !stream->request_ended) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_NO_ERROR);
    }
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
    Http2Connection& c = self(user_data);
    c.endHeaderBlock(stream_id);  // reset in the middle of its header block
    Http2Stream* stream = c.find(stream_id);
    if (stream == nullptr) return 0;
    stream->closed = true;
    if (Session* session = stream->session) {
      c.detachSession(*stream);  // it must not call back into a stream being erased
      session->abortStream();
    }
    c.erase(stream_id);
    return 0;
  }

  static ssize_t readBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
    Http2Connection& c = self(user_data);
    Http2Stream* stream = c.find(stream_id);
    if (stream == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    bool made_room = false;
    ssize_t n = http::readBodyForData(stream->body, stream->response_ended, stream->deferred,
                                      buf, length, data_flags, made_room);
    if (made_room && stream->session_blocked) {
      stream->session_blocked = false;
      c.markReady(*stream);
    }
    if ((*data_flags & NGHTTP2_DATA_FLAG_EOF) != 0 && !stream->trailers.empty() &&
        stream->chunked_decoder.done()) {
      // The stream ends with the trailers' HEADERS frame instead of this DATA frame.
      if (!http::submitTrailerLines(c.session_, stream_id, stream->trailers)) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      }
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return n;
  }
};

Http2Connection::Http2Connection(Session& owner, Worker& worker, const config::Limits& limits)
    : owner_(owner), worker_(worker), limits_(limits) {}

Http2Connection::~Http2Connection() {
  abortAll();
  if (session_ != nullptr) nghttp2_session_del(session_);
}

bool Http2Connection::start(std::string_view upgrade_settings, const http::RequestHead* upgrade) {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, Callbacks::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, Callbacks::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, Callbacks::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, Callbacks::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, Callbacks::onStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, Callbacks::onFrameSend);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Request DATA is acknowledged as the stream session takes it, not as it arrives.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_outbound_ack(option, 1000);   // SETTINGS/PING floods
  nghttp2_option_set_max_settings(option, 32);
  nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33);  // rapid reset
  nghttp2_option_set_max_continuations(option, 8);               // CONTINUATION floods
  int rc = nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
  if (rc != 0) return false;

  // MAX_CONCURRENT_STREAMS is not among them: it is added to the frame as it leaves (see
  // produce()), so that nghttp2 does not enforce it by ending the connection.
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamBuffer)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits_.max_header_bytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings,
                              sizeof settings / sizeof settings[0]) != 0) {
    return false;
  }
  // A larger connection window than the default 64 KiB, so several uploads can flow at once.
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(4 * kStreamBuffer));
  if (upgrade != nullptr) {
    const bool head_request = upgrade->method == "HEAD";
    if (nghttp2_session_upgrade2(session_,
                                 reinterpret_cast<const uint8_t*>(upgrade_settings.data()),
                                 upgrade_settings.size(), head_request ? 1 : 0, nullptr) != 0) {
      return false;
    }
    Http2Stream& stream = open(1);
    stream.method.assign(upgrade->method);
    stream.path.assign(upgrade->target);
    stream.authority.assign(upgrade->host);
    for (const auto& field : upgrade->headers) {
      // What belongs to the HTTP/1.1 connection (Upgrade, HTTP2-Settings, ...) stays there;
      // TE is kept, as it is from an HTTP/2 request, for what it says about trailers.
      if ((http::isHopByHop(field.name) && !http::equalsIgnoreCase(field.name, "te")) ||
          http::equalsIgnoreCase(field.name, "host") ||
          http::equalsIgnoreCase(field.name, "http2-settings") ||
          (upgrade->connection_lists_headers &&
           http::connectionListsField(upgrade->headers, field.name))) {
        continue;
      }
      addField(stream, field.name, field.value);
    }
    stream.header_bytes = upgrade->head_size;
    stream.request_ended = true;
    startStreamSession(stream);
  }
  return true;
}

// A stream is found through nghttp2's own stream map, where open() leaves a pointer to it.
Http2Stream* Http2Connection::find(int32_t id) {
  // Callbacks come in runs for one stream: the last one found is looked at first.
  if (last_found_ != nullptr && last_found_->id == id) return last_found_;
  last_found_ = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session_, id));
  return last_found_;
}

Http2Stream& Http2Connection::open(int32_t id) {
  if (Http2Stream* known = find(id)) return *known;
  streams_.push_back(std::make_unique<Http2Stream>());
  Http2Stream& stream = *streams_.back();
  stream.id = id;
  stream.slot = streams_.size() - 1;
  // Room for a typical request's fields at once, not grown field by field.
  stream.fields.reserve(16);
  stream.field_text.reserve(512);
  nghttp2_session_set_stream_user_data(session_, id, &stream);
  return stream;
}

void Http2Connection::erase(int32_t id) {
  Http2Stream* stream = find(id);
  if (stream == nullptr) return;
  nghttp2_session_set_stream_user_data(session_, id, nullptr);
  last_found_ = nullptr;
  const size_t slot = stream->slot;
  if (slot + 1 != streams_.size()) {
    streams_[slot] = std::move(streams_.back());
    streams_[slot]->slot = slot;
  }
  streams_.pop_back();
}

void Http2Connection::addField(Http2Stream& stream, std::string_view name, std::string_view value) {
  stream.fields.push_back({static_cast<uint32_t>(stream.field_text.size()),
                           static_cast<uint32_t>(name.size()),
                           static_cast<uint32_t>(value.size())});
  stream.field_text.append(name);
  stream.field_text.append(value);
}

void Http2Connection::endRequestHead(Http2Stream& stream) {
  // Without a length, the body is passed on chunk-framed, ended by the stream's end.
  stream.chunked = !stream.request_ended && !stream.has_content_length;
  startStreamSession(stream);
}

bool Http2Connection::requestHead(const Http2Stream& stream, const http::RequestLimits& limits,
                                  http::RequestHead& head, http::ParseError& error) const {
  head.headers.clear();
  head.method = stream.method;
  // CONNECT has no :path: its authority is the target, which the checks refuse.
  head.target =
      stream.path.empty() ? std::string_view(stream.authority) : std::string_view(stream.path);
  head.head_size = stream.header_bytes;
  head.connection_lists_headers = false;
  head.upgrade = false;
  if (!stream.authority.empty()) head.headers.push_back({"host", stream.authority});
  const char* text = stream.field_text.data();
  for (const auto& field : stream.fields) {
    head.headers.push_back({std::string_view(text + field.at, field.name_len),
                            std::string_view(text + field.at + field.name_len, field.value_len)});
  }
  if (!stream.cookie.empty()) head.headers.push_back({"cookie", stream.cookie});
  if (http::checkRequestHead(limits, head, error) != http::ParseStatus::Complete) return false;
  if (stream.chunked) head.framing = http::BodyFraming::Chunked;
  return true;
}

void Http2Connection::startStreamSession(Http2Stream& stream) {
  stream.session = owner_.startStreamSession(stream);
  if (stream.session == nullptr) {
    reset(stream, NGHTTP2_REFUSED_STREAM);  // the worker is at its stream budget: retry later
    return;
  }
  ++active_sessions_;
  markReady(stream);
}

void Http2Connection::endHeaderBlock(int32_t stream_id) {
  if (stream_id != header_block_stream_) return;
  header_block_stream_ = 0;
  header_block_started_ms_ = 0;
}

void Http2Connection::detachSession(Http2Stream& stream) {
  if (stream.session == nullptr) return;
  stream.session = nullptr;
  --active_sessions_;
}

void Http2Connection::markReady(Http2Stream& stream) {
  if (std::find(ready_.begin(), ready_.end(), stream.id) == ready_.end()) {
    ready_.push_back(stream.id);
  }
}

bool Http2Connection::runReady() {
  if (ready_.empty()) return false;
  std::vector<int32_t> ready;
  ready.swap(ready_);
  for (int32_t id : ready) {
    Http2Stream* stream = find(id);
    if (stream != nullptr && stream->session != nullptr) stream->session->onStreamReady();
  }
  return true;
}

bool Http2Connection::receive(Buffer& in) {
  ssize_t n = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()),
                                       in.size());
  if (n < 0) return false;
  in.consume(static_cast<size_t>(n));
  if (discarded_ > 0) {
    nghttp2_session_consume_connection(session_, discarded_);
    discarded_ = 0;
  }
  return true;
}

bool Http2Connection::produce(Buffer& out, size_t limit) {
  while (out.size() < limit && nghttp2_session_want_write(session_) != 0) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return false;
    if (n == 0) break;
    std::string_view frames(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    if (!preface_sent_) {
      preface_sent_ = true;
      appendPrefaceWithStreamLimit(frames, out);
      continue;
    }
    out.append(frames);
  }
  return true;
}

// The server preface is a SETTINGS frame and comes first from mem_send: one more entry,
// MAX_CONCURRENT_STREAMS, is put into it (RFC 9113 §6.5.1: 9-byte header, 6 bytes per entry).
void Http2Connection::appendPrefaceWithStreamLimit(std::string_view frames, Buffer& out) {
  constexpr size_t kHeader = 9;
  auto length = [&](size_t at) {
    return (static_cast<size_t>(static_cast<uint8_t>(frames[at])) << 16) |
           (static_cast<size_t>(static_cast<uint8_t>(frames[at + 1])) << 8) |
           static_cast<uint8_t>(frames[at + 2]);
  };
  if (frames.size() < kHeader || frames[3] != NGHTTP2_SETTINGS || frames[4] != 0 ||
      frames.size() < kHeader + length(0)) {
    out.append(frames);  // not what is expected: sent as it is, without the limit
    return;
  }
  const size_t payload = length(0);
  const size_t grown = payload + 6;
  const uint32_t limit = limits_.http2_max_concurrent_streams;
  const char header[3] = {static_cast<char>(grown >> 16), static_cast<char>(grown >> 8),
                          static_cast<char>(grown)};
  const char entry[6] = {0, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                         static_cast<char>(limit >> 24), static_cast<char>(limit >> 16),
                         static_cast<char>(limit >> 8), static_cast<char>(limit)};
  out.append(std::string_view(header, 3));
  out.append(frames.substr(3, kHeader - 3 + payload));
  out.append(std::string_view(entry, 6));
  out.append(frames.substr(kHeader + payload));
}

bool Http2Connection::finished() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

void Http2Connection::shutdown() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  wakeOwner();
}

void Http2Connection::abortAll() {
  for (auto& stream : streams_) {
    // nghttp2 may still call back for it (a last DATA read): it finds nothing.
    if (session_ != nullptr) nghttp2_session_set_stream_user_data(session_, stream->id, nullptr);
    if (Session* session = stream->session) {
      detachSession(*stream);
      session->abortStream();
    }
  }
  streams_.clear();
  last_found_ = nullptr;
  ready_.clear();
}

void Http2Connection::acknowledge(Http2Stream& stream) {
  // Framing bytes only ever make the buffer larger than the DATA it holds, so this gives back
  // no more than what the stream session has taken.
  size_t buffered = stream.request.size();
  if (stream.unacknowledged > buffered) {
    nghttp2_session_consume(session_, stream.id, stream.unacknowledged - buffered);
    stream.unacknowledged = buffered;
    wakeOwner();
  }
}

ssize_t Http2Connection::streamRead(Http2Stream& stream, void* data, size_t size) {
  size_t n = std::min(size, stream.request.size());
  if (n == 0) {
    errno = EAGAIN;
    return -1;
  }
  std::memcpy(data, stream.request.data(), n);
  stream.request.consume(n);
  if (stream.request.empty()) stream.request.clear();
  acknowledge(stream);
  return static_cast<ssize_t>(n);
}

ssize_t Http2Connection::streamWrite(Http2Stream& stream, const iovec* iov, int count) {
  size_t taken = 0;
  for (int i = 0; i < count; ++i) {
    size_t n = takeResponse(stream, static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    taken += n;
    if (n < iov[i].iov_len) break;
  }
  if (taken > 0 && stream.deferred && stream.head_submitted) {
    stream.deferred = false;
    nghttp2_session_resume_data(session_, stream.id);
  }
  if (taken > 0) wakeOwner();
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  if (taken < total) stream.session_blocked = true;  // woken when DATA frames make room
  if (taken == 0) {
    errno = EAGAIN;
    return -1;
  }
  return static_cast<ssize_t>(taken);
}

// Takes response body bytes from the stream session, framed as respond() said: Length and
// UntilClose bytes are the body, Chunked ones are de-chunked into it. Returns how many bytes
// were taken.
size_t Http2Connection::takeResponse(Http2Stream& stream, const char* data, size_t size) {
  size_t taken = 0;
  if (!stream.head_submitted) {
    reset(stream, NGHTTP2_INTERNAL_ERROR);  // a body before its head: a stream session's bug
    return size;
  }
  if (stream.response_ended) return size;  // anything after the end is not ours to send
  while (taken < size && stream.body.size() < kStreamBuffer) {
    const char* p = data + taken;
    size_t room = kStreamBuffer - stream.body.size();
    size_t n = std::min(size - taken, room);
    switch (stream.framing) {
      case http::BodyFraming::Length:
        n = static_cast<size_t>(std::min<uint64_t>(n, stream.remaining));
        stream.body.append(std::string_view(p, n));
        stream.remaining -= n;
        if (stream.remaining == 0) stream.response_ended = true;
        break;
      case http::BodyFraming::Chunked: {
        stream.decoded.clear();
        auto r = stream.chunked_decoder.feed(p, n, &stream.decoded, &stream.trailers);
        if (r.error) {
          reset(stream, NGHTTP2_INTERNAL_ERROR);
          return size;
        }
        stream.body.append(stream.decoded);
        n = r.consumed;
        if (r.done || stream.chunked_decoder.done()) stream.response_ended = true;
        break;
      }
      case http::BodyFraming::UntilClose:
        stream.body.append(std::string_view(p, n));
        break;
      case http::BodyFraming::None:
        stream.response_ended = true;
        break;
    }
    taken += n;
    if (stream.response_ended) return size;
    if (n == 0) break;
  }
  return taken;
}

http::FieldList& Http2Connection::headFields() {
  thread_local http::FieldList fields;  // its capacity serves every head the thread sends
  return fields;
}

bool Http2Connection::respond(Http2Stream& stream, http::FieldList& fields,
                              http::BodyFraming framing, uint64_t content_length) {
  stream.framing = framing;
  stream.remaining = content_length;
  stream.chunked_decoder.reset();
  const bool has_body = framing != http::BodyFraming::None &&
                        !(framing == http::BodyFraming::Length && content_length == 0);
  stream.response_ended = !has_body;
  nghttp2_data_provider provider{};
  provider.read_callback = Callbacks::readBody;
  if (nghttp2_submit_response(session_, stream.id, fields.data(), fields.size(),
                              has_body ? &provider : nullptr) != 0) {
    return false;
  }
  stream.head_submitted = true;
  // Sent now, not with the first body bytes: a response whose body is slow to come (a stream
  // of events, a long poll, an upstream that stalls) shows its head at once.
  wakeOwner();
  return true;
}

StreamReplyWriter::StreamReplyWriter(Http2Connection& connection, Http2Stream& stream,
                                     Buffer& body_out)
    : connection_(connection),
      stream_(stream),
      body_out_(body_out),
      fields_(Http2Connection::headFields()) {}

void StreamReplyWriter::status(int status) { fields_.startResponse(status); }

void StreamReplyWriter::field(std::string_view name, std::string_view value) {
  fields_.addForwarded(name, value);
}

void StreamReplyWriter::fieldLines(std::string_view lines) {
  http::forEachFieldLine(lines, [&](std::string_view name, std::string_view value) {
    fields_.addForwarded(name, value);
  });
}

void StreamReplyWriter::body(std::string_view body) {
  failed_ = !connection_.respond(stream_, fields_,
                                 body.empty() ? http::BodyFraming::None : http::BodyFraming::Length,
                                 body.size());
  if (!failed_) body_out_.append(body);
}

int Http2Connection::takeTrailer(Http2Stream& stream, const uint8_t* name_data, size_t name_len,
                                 const uint8_t* value_data, size_t value_len) {
  std::string_view name(reinterpret_cast<const char*>(name_data), name_len);
  std::string_view value(reinterpret_cast<const char*>(value_data), value_len);
  if (!http::isValidHttp2Field(name, value) || name.starts_with(':')) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RFC 9113 §8.1: no pseudo-fields here
  }
  // Counted against the header limit with the head; past it, or without chunked coding to
  // carry them (a request with Content-Length), trailers are dropped.
  stream.header_bytes += name_len + value_len + 32;
  if (!stream.chunked || stream.header_bytes > limits_.max_header_bytes) return 0;
  stream.request_trailers.append(name);
  stream.request_trailers.append(": ");
  stream.request_trailers.append(value);
  stream.request_trailers.append("\r\n");
  return 0;
}

void Http2Connection::reset(Http2Stream& stream, uint32_t error_code) {
  stream.response_ended = true;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id, error_code);
  wakeOwner();
}

void Http2Connection::streamSessionClosed(Http2Stream& stream) {
  detachSession(stream);
  if (!stream.closed) {
    if (!stream.head_submitted) {
      reset(stream, NGHTTP2_INTERNAL_ERROR);  // it gave up without an answer
    } else if (!stream.response_ended) {
      if (stream.framing == http::BodyFraming::UntilClose) {
        stream.response_ended = true;  // the end of the body, as HTTP/1.1 would say it
      } else {
        reset(stream, NGHTTP2_INTERNAL_ERROR);  // a truncated body must not look whole
      }
    }
    if (stream.deferred) {
      stream.deferred = false;
      nghttp2_session_resume_data(session_, stream.id);
    }
    // Request DATA still to come is dropped; its window is given back as it arrives.
    if (stream.unacknowledged > 0) {
      nghttp2_session_consume(session_, stream.id, stream.unacknowledged);
      stream.unacknowledged = 0;
    }
  }
  // What is left to send is in `body`; the rest of the stream's memory goes now.
  stream.request = Buffer();
  std::string().swap(stream.decoded);
  wakeOwner();
}

void Http2Connection::wakeOwner() { owner_.requestDrive(); }

void Http2Connection::replyLocally(Http2Stream& stream, http::ErrorCode code,
                                   std::string_view message) {
  char request_id[32];
  worker_.newRequestId(request_id);
  Buffer body;
  StreamReplyWriter writer(*this, stream, body);
  http::writeLocalReply({code, message, std::string_view(request_id, sizeof request_id), {}, {}, {},
                         false, false},
                        writer);
  if (writer.failed()) {
    reset(stream, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  takeResponse(stream, body.data(), body.size());
  wakeOwner();
}

bool Http2Connection::takeControlFrameToken() {
  // A token bucket: kControlBurst frames at once, kControlRate per second after that.
  uint64_t now = worker_.loop().nowMs();
  uint64_t refill = (now - control_refill_ms_) * kControlRate / 1000;
  if (refill > 0) {
    control_tokens_ =
        static_cast<uint32_t>(std::min<uint64_t>(kControlBurst, control_tokens_ + refill));
    control_refill_ms_ = now;
  }
  if (control_tokens_ == 0) return false;
  --control_tokens_;
  return true;
}

}  // namespace portico::proxy
