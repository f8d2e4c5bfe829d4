#pragma once
// Every response the gateway makes itself (SPEC §4): JSON error body, matching status, the
// request id, and Connection: close when the connection ends after it. A gRPC client gets its
// errors as a trailers-only gRPC response instead (SPEC §8).

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "core/buffer.hpp"

namespace portico::http {

enum class ErrorCode : uint8_t {
  BadRequest,         // 400
  Unauthenticated,    // 401
  Forbidden,          // 403
  NoRoute,            // 404
  MethodNotAllowed,   // 405
  RequestTimeout,     // 408
  PayloadTooLarge,    // 413
  UriTooLong,         // 414
  HeadersTooLarge,    // 431
  RateLimited,        // 429
  QuotaExceeded,      // 429
  BadUpstream,        // 502
  Unavailable,        // 503
  UpstreamTimeout,    // 504
  Internal,           // 500
};

int statusOf(ErrorCode code);
std::string_view codeName(ErrorCode code);
std::string_view reasonPhrase(int status);

struct LocalReply {
  ErrorCode code;
  std::string_view message;
  std::string_view request_id;
  std::string_view allow;  // 405 only
  std::string_view www_authenticate;  // 401 only
  std::string_view extra_headers;     // whole lines, each ending in CRLF (Retry-After, ...)
  bool close = false;      // adds Connection: close
  bool keep_alive_1_0 = false;  // HTTP/1.0 client that asked for keep-alive
  std::string_view filter_headers;  // whole lines the route's filters add (CORS, ...)
  bool grpc = false;  // the request is gRPC: 200, grpc-status and grpc-message, no body
  std::string_view grpc_content_type = "application/grpc";  // gRPC-Web's for its requests
};

// Appends one "name: value\r\n" line (one room check, not four).
inline void appendFieldLine(Buffer& out, std::string_view name, std::string_view value) {
  char* p = out.extend(name.size() + value.size() + 4);
  if (!name.empty()) std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

// Where an answer of the gateway's goes, head then body: HTTP/1.1 text (TextReplyWriter), or an
// HTTP/2 stream's fields and DATA (the stream's own writer, in proxy/).
class ReplyWriter {
 public:
  virtual ~ReplyWriter() = default;
  virtual void status(int status) = 0;
  virtual void field(std::string_view name, std::string_view value) = 0;
  // Whole "Name: value\r\n" lines.
  virtual void fieldLines(std::string_view lines) = 0;
  // Ends the head; `body` is the whole body (empty for none).
  virtual void body(std::string_view body) = 0;
};

// The answer as HTTP/1.1 text, appended to a buffer.
class TextReplyWriter final : public ReplyWriter {
 public:
  explicit TextReplyWriter(Buffer& out) : out_(out) {}
  void status(int status) override;
  void field(std::string_view name, std::string_view value) override;
  void fieldLines(std::string_view lines) override { out_.append(lines); }
  void body(std::string_view body) override;

 private:
  Buffer& out_;
};

void writeLocalReply(const LocalReply& reply, ReplyWriter& out);
// Appends the whole response (head and body) to `out` as HTTP/1.1 text.
inline void writeLocalReply(const LocalReply& reply, Buffer& out) {
  TextReplyWriter writer(out);
  writeLocalReply(reply, writer);
}

// An answer the gateway makes without a body (a CORS preflight's 204, ...).
struct EmptyReply {
  int status;
  std::string_view request_id;
  std::string_view headers;  // whole lines, each ending in CRLF
  bool close = false;
  bool keep_alive_1_0 = false;
};
void writeEmptyReply(const EmptyReply& reply, ReplyWriter& out);
inline void writeEmptyReply(const EmptyReply& reply, Buffer& out) {
  TextReplyWriter writer(out);
  writeEmptyReply(reply, writer);
}

// The gRPC status code (grpc/doc/statuscodes.md) a gateway error with this HTTP status carries.
int grpcStatusOf(int http_status);
// Whether a content-type names a gRPC request (application/grpc, application/grpc+proto, ...).
bool isGrpcContentType(std::string_view content_type);
// A grpc-timeout value ("100m", "5S": up to 8 digits and a unit of H M S m u n) in
// milliseconds, rounded up; nullopt when it is not one.
std::optional<uint64_t> parseGrpcTimeoutMs(std::string_view value);
// Appends `message` percent-encoded as grpc-message wants it (grpc/doc/PROTOCOL-HTTP2.md).
void appendGrpcMessage(std::string_view message, Buffer& out);
// Appends `s` JSON-escaped (without quotes) to `out`.
void appendJsonEscaped(std::string_view s, Buffer& out);
// The same into `out`, which has room for kJsonEscapeGrowth bytes per byte of `s`; returns the
// end of what was written.
inline constexpr size_t kJsonEscapeGrowth = 6;  // a control byte becomes \u00XX
char* writeJsonEscaped(std::string_view s, char* out);
// Appends `s` as a JSON string: quoted and escaped.
inline void appendJsonString(std::string_view s, Buffer& out) {
  out.append('"');
  appendJsonEscaped(s, out);
  out.append('"');
}

}  // namespace portico::http
