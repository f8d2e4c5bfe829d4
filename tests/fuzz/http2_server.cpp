// Fuzz target: the server side of HTTP/2 (src/proxy/http2_connection.cpp): client bytes go
// through nghttp2 and our callbacks into per-stream requests (a head as fields, a body as bytes),
// and scripted answers (a head as fields, a body as bytes) come back out as HEADERS and DATA. The
// real Http2Connection runs, compiled against fake Session and Worker classes
// (tests/fuzz/http2_fake/): a fake stream session reads its request as the real one would, checks
// that its body is framed as its head says, and answers it in one of several ways (lengths,
// chunks, until close, no content, bodies larger than the stream buffer, a body without a head,
// no answer at all).
//
// Input: byte 0 —
//   bits 0-2: the answer (enum Answer), bit 3: answer as soon as the head is read,
//   bits 4-5: how the client bytes arrive (all at once, 9, 64 or 1000 bytes at a time),
//   bit 6: start as an h2c upgrade (stream 1 is a GET from the HTTP/1.1 upgrade request),
//   bit 7: shut down (GOAWAY) after the first piece.
// The rest is what the client sends, starting with the connection preface.

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "core/buffer.hpp"
#include "fuzz_util.hpp"
#include "http/http1_parser.hpp"
#include "http/nghttp2_glue.hpp"
#include "proxy/http2_connection.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {
namespace {

struct Harness;

// Past kStreamBuffer: the stream session has to wait for DATA frames to make room.
std::string_view largeBody() {
  static const std::string body(300000, 'x');
  return body;
}

constexpr size_t kStreamSessionBudget = 4;  // below the connection's stream limit (8)

enum class Answer : uint8_t {
  Length, Chunked, UntilClose, NoContent, EchoChunked, Large, BodyWithoutHead, GiveUp
};

}  // namespace

// The fake's side of a Session: the connection's session, or a stream session.
struct Session::State {
  Session session;
  Harness* harness = nullptr;
  Http2Stream* stream = nullptr;  // a stream session's stream, until it is done or aborted
  bool closed = false;

  // --- the request, as the real session would read it ---
  bool head_done = false;
  bool refused = false;  // a bad head was answered 400
  http::RequestHead head;
  http::ChunkedDecoder chunked;
  uint64_t length_left = 0;
  bool request_done = false;

  // --- the answer ---
  bool answering = false;
  std::string out;
  std::string_view tail;  // sent after `out`: a static body, so large answers copy nothing here
  size_t written = 0;
  bool out_complete = false;  // nothing more will be added to `out`

  size_t answerSize() const { return out.size() + tail.size(); }

  void run();
  void takeHead();
  void takeRequest(std::string_view bytes);
  void startAnswer();
  void write();
  void finish();
};

namespace {

struct Harness {
  Worker worker;
  Answer answer = Answer::Length;
  bool answer_early = false;
  bool drive_requested = false;
  // Sessions outlive the connection, which may still call them while it is destroyed.
  std::vector<std::unique_ptr<Session::State>> sessions;
  std::unique_ptr<Http2Connection> connection;

  size_t liveStreamSessions() const {
    return static_cast<size_t>(std::count_if(sessions.begin(), sessions.end(),
                                              [](const auto& s) { return s->stream != nullptr; }));
  }

  Session::State& newSession() {
    sessions.push_back(std::make_unique<Session::State>());
    Session::State& s = *sessions.back();
    s.session.state = &s;
    s.harness = this;
    return s;
  }
};

}  // namespace

Session* Session::startStreamSession(Http2Stream& stream) {
  // The worker's budget of stream sessions (Worker::newStreamSession), kept small so that
  // refusing a stream is exercised too.
  if (state->harness->liveStreamSessions() >= kStreamSessionBudget) return nullptr;
  Session::State& s = state->harness->newSession();
  s.stream = &stream;
  return &s.session;
}

void Session::requestDrive() { state->harness->drive_requested = true; }

void Session::onStreamReady() { state->run(); }

void Session::abortStream() {
  state->stream = nullptr;
  state->closed = true;
}

void Session::State::run() {
  if (closed || stream == nullptr) return;
  if (!head_done) takeHead();
  char buffer[4096];
  while (!closed) {
    const ssize_t n = harness->connection->streamRead(*stream, buffer, sizeof buffer);
    if (n < 0) {
      FUZZ_CHECK(errno == EAGAIN);
      break;
    }
    FUZZ_CHECK(n > 0 && static_cast<size_t>(n) <= sizeof buffer);
    takeRequest(std::string_view(buffer, static_cast<size_t>(n)));
  }
  if (!closed && answering) write();
}

// Takes the request's head from the stream as Session does (Http2Connection::requestHead).
void Session::State::takeHead() {
  head_done = true;
  http::ParseError error = http::ParseError::None;
  // The default limits, as on a listener that sets none.
  if (!harness->connection->requestHead(*stream, http::RequestLimits{}, head, error)) {
    // What the real session does with a bad head: 400, and nothing more is read.
    refused = true;
    http::FieldList& fields = Http2Connection::headFields();
    fields.startResponse(400);
    FUZZ_CHECK(harness->connection->respond(*stream, fields, http::BodyFraming::None, 0));
    out_complete = true;
    answering = true;
    return;
  }
  // The head says what the HTTP/2 request said: nothing in a field could change it.
  FUZZ_CHECK(head.method == stream->method);
  FUZZ_CHECK(head.target == (stream->path.empty() ? stream->authority : stream->path));
  if (head.target.starts_with('/') && !stream->authority.empty()) {
    FUZZ_CHECK(head.host == stream->authority);
  }
  length_left = head.framing == http::BodyFraming::Length ? head.content_length : 0;
  request_done = head.framing == http::BodyFraming::None;
  if (harness->answer_early || request_done) startAnswer();
}

// Reads the request's body as Session does, framed by its head.
void Session::State::takeRequest(std::string_view bytes) {
  if (closed || refused) return;
  if (bytes.empty()) return;
  // Nothing may follow the end of the request: on a stream session it would be read as a second
  // request that the client never sent over HTTP/2 (a desync).
  FUZZ_CHECK(!request_done);
  std::string decoded;
  switch (head.framing) {
    case http::BodyFraming::Length:
      FUZZ_CHECK(bytes.size() <= length_left);
      length_left -= bytes.size();
      decoded.assign(bytes);
      request_done = length_left == 0;
      break;
    case http::BodyFraming::Chunked: {
      const auto r = chunked.feed(bytes.data(), bytes.size(), &decoded);
      // The chunk framing is Http2Connection's own: it must decode, and end with the stream.
      FUZZ_CHECK(!r.error && r.consumed == bytes.size());
      request_done = r.done;
      break;
    }
    case http::BodyFraming::None:
    case http::BodyFraming::UntilClose:
      FUZZ_CHECK(false);  // request_done was set with the head
  }
  if (answering && harness->answer == Answer::EchoChunked && !decoded.empty()) {
    char size[20];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", decoded.size());
    out.append(size, static_cast<size_t>(n));
    out.append(decoded);
    out.append("\r\n");
  }
  if (request_done) {
    if (!answering) startAnswer();
    if (harness->answer == Answer::EchoChunked && !out_complete) {
      out.append("0\r\n\r\n");
      out_complete = true;
    }
  }
}

// The head goes to the stream as fields (Http2Connection::respond), as the real session's
// does; the body is written as bytes framed as the head said.
void Session::State::startAnswer() {
  answering = true;
  out_complete = true;
  http::FieldList& fields = Http2Connection::headFields();
  auto respond = [&](int status, http::BodyFraming framing, uint64_t length) {
    fields.startResponse(status);
    fields.addForwarded("content-type", "text/plain");
    fields.addForwarded("connection", "keep-alive");  // connection-specific: left out
    fields.addForwarded("X-Fuzz", "1");                // lowered on the way
    FUZZ_CHECK(harness->connection->respond(*stream, fields, framing, length));
  };
  switch (harness->answer) {
    case Answer::Length:
      respond(200, http::BodyFraming::Length, 5);
      out = "hello";
      break;
    case Answer::Chunked:
      respond(200, http::BodyFraming::Chunked, 0);
      out = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
      break;
    case Answer::UntilClose:
      respond(200, http::BodyFraming::UntilClose, 0);
      out = "until the stream session closes";
      break;
    case Answer::NoContent:
      respond(204, http::BodyFraming::None, 0);
      break;
    case Answer::EchoChunked:
      respond(200, http::BodyFraming::Chunked, 0);
      out_complete = request_done;
      if (request_done) out.append("0\r\n\r\n");
      break;
    case Answer::Large:
      respond(200, http::BodyFraming::Length, 300000);
      tail = largeBody();
      break;
    case Answer::BodyWithoutHead:
      out = "a body before any head: the stream is reset";
      break;
    case Answer::GiveUp:
      finish();
      break;
  }
}

// Writes what is waiting, as Session::writeSocket does: two iovecs at a time (the first write
// cuts the head after 7 bytes), until the connection takes no more.
void Session::State::write() {
  while (!closed && written < answerSize()) {
    iovec iov[2];
    int count = 0;
    size_t offered = 0;
    for (size_t at = written; count < 2 && at < answerSize(); ++count) {
      const bool in_out = at < out.size();
      const char* p = in_out ? out.data() + at : tail.data() + (at - out.size());
      const size_t available = in_out ? out.size() - at : answerSize() - at;
      const size_t len = std::min<size_t>(available, written == 0 && count == 0 ? 7 : 16 * 1024);
      iov[count] = {const_cast<char*>(p), len};  // only read: iovec is not const-correct
      at += len;
      offered += len;
    }
    const ssize_t n = harness->connection->streamWrite(*stream, iov, count);
    if (n < 0) {
      FUZZ_CHECK(errno == EAGAIN);
      return;  // woken again when DATA frames make room
    }
    FUZZ_CHECK(n > 0 && static_cast<size_t>(n) <= offered);
    written += static_cast<size_t>(n);
  }
  if (!closed && out_complete && written == answerSize()) finish();
}

// The stream session is done (answered, or gave up): as Session::close() on a stream session.
void Session::State::finish() {
  if (closed) return;
  closed = true;
  Http2Stream* s = stream;
  stream = nullptr;
  if (s != nullptr) harness->connection->streamSessionClosed(*s);
}

}  // namespace portico::proxy

namespace {

using namespace portico;
using namespace portico::proxy;

constexpr size_t kPieceSizes[] = {SIZE_MAX, 9, 64, 1000};
constexpr std::string_view kUpgradeHead =
    "GET /upgraded HTTP/1.1\r\nHost: fuzz.example\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
// The decoded HTTP2-Settings above: MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE 2^30,
// ENABLE_PUSH 0.
constexpr char kUpgradeSettings[] = {0, 3, 0, 0, 0, 100, 0, 4, 0x40, 0, 0, 0, 0, 2, 0, 0, 0, 0};

// What Session::driveHttp2 does after bytes arrive: the stream sessions run and frames go out,
// for as long as that makes progress. False when the connection has failed.
bool drive(Harness& h) {
  for (int round = 0; round < 64; ++round) {
    h.drive_requested = false;
    bool progress = h.connection->runReady();
    Buffer out;
    if (!h.connection->produce(out, 64 * 1024)) return false;
    progress = progress || !out.empty();
    // The connection counts the stream sessions it serves (their timers keep the connection's
    // idle timer off): exactly those that have not finished or been aborted.
    FUZZ_CHECK(h.connection->activeStreamSessions() == h.liveStreamSessions());
    if (!progress && !h.drive_requested) break;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputReader in(data, size);
  const uint8_t control = in.byte();
  std::string_view client = in.rest();

  Harness h;
  h.answer = static_cast<Answer>(control & 7);
  h.answer_early = (control & 8) != 0;
  config::Limits limits;
  limits.max_header_bytes = 4096;  // small, so the 431 path is reachable
  limits.http2_max_concurrent_streams = 8;
  Session::State& owner = h.newSession();
  h.connection = std::make_unique<Http2Connection>(owner.session, h.worker, limits);

  http::RequestHead upgrade;
  http::ParseError error = http::ParseError::None;
  FUZZ_CHECK(http::parseRequestHead(kUpgradeHead.data(), kUpgradeHead.size(), http::RequestLimits{},
                                    upgrade, error) == http::ParseStatus::Complete);
  bool ok = (control & 0x40) != 0
                ? h.connection->start(std::string_view(kUpgradeSettings, sizeof kUpgradeSettings),
                                      &upgrade)
                : h.connection->start();
  FUZZ_CHECK(ok);
  ok = drive(h);
  const size_t piece = kPieceSizes[(control >> 4) & 3];
  bool first = true;
  while (ok && !client.empty()) {
    const size_t n = std::min(piece, client.size());
    Buffer buffer;
    buffer.append(client.substr(0, n));
    client.remove_prefix(n);
    h.worker.loop().now_ms += 10;
    ok = h.connection->receive(buffer);
    if (ok) ok = drive(h);
    if (first && (control & 0x80) != 0) {
      h.connection->shutdown();
      ok = ok && drive(h);
    }
    first = false;
  }
  if (!ok) {
    // A protocol error: the GOAWAY is produced once, then every stream ends.
    Buffer out;
    h.connection->produce(out, 64 * 1024);
    h.connection->abortAll();
    FUZZ_CHECK(h.connection->activeStreamSessions() == 0 && h.liveStreamSessions() == 0);
  }
  (void)h.connection->finished();
  (void)h.connection->openStreams();
  h.connection.reset();
  return 0;
}
