#include "http/local_reply.hpp"

#include <cstring>

#include "http/header.hpp"

namespace portico::http {

int statusOf(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadRequest: return 400;
    case ErrorCode::Unauthenticated: return 401;
    case ErrorCode::Forbidden: return 403;
    case ErrorCode::NoRoute: return 404;
    case ErrorCode::MethodNotAllowed: return 405;
    case ErrorCode::RequestTimeout: return 408;
    case ErrorCode::RateLimited: return 429;
    case ErrorCode::QuotaExceeded: return 429;
    case ErrorCode::PayloadTooLarge: return 413;
    case ErrorCode::UriTooLong: return 414;
    case ErrorCode::HeadersTooLarge: return 431;
    case ErrorCode::BadUpstream: return 502;
    case ErrorCode::Unavailable: return 503;
    case ErrorCode::UpstreamTimeout: return 504;
    case ErrorCode::Internal: return 500;
  }
  return 500;
}

std::string_view codeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadRequest: return "bad_request";
    case ErrorCode::Unauthenticated: return "unauthenticated";
    case ErrorCode::Forbidden: return "forbidden";
    case ErrorCode::NoRoute: return "no_route";
    case ErrorCode::MethodNotAllowed: return "method_not_allowed";
    case ErrorCode::RequestTimeout: return "request_timeout";
    case ErrorCode::RateLimited: return "rate_limited";
    case ErrorCode::QuotaExceeded: return "quota_exceeded";
    case ErrorCode::PayloadTooLarge: return "payload_too_large";
    case ErrorCode::UriTooLong: return "uri_too_long";
    case ErrorCode::HeadersTooLarge: return "headers_too_large";
    case ErrorCode::BadUpstream: return "bad_upstream";
    case ErrorCode::Unavailable: return "unavailable";
    case ErrorCode::UpstreamTimeout: return "upstream_timeout";
    case ErrorCode::Internal: return "internal";
  }
  return "internal";
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204:
      return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

namespace {

// Whether any byte of the word needs a JSON escape: a control character, '"' or '\\'.
bool wordNeedsEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101u;
  constexpr uint64_t kHighs = 0x8080808080808080u;
  auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  const uint64_t control = (w - kOnes * 0x20) & ~w & kHighs;  // a byte under 0x20
  return (control | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'))) != 0;
}

}  // namespace

char* writeJsonEscaped(std::string_view s, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Runs that need no escape (nearly always the whole string) are copied at once, found eight
  // bytes at a time.
  size_t run = 0;
  size_t i = 0;
  auto copyRun = [&](size_t end) {
    if (end > run) std::memcpy(out, s.data() + run, end - run);
    out += end - run;
  };
  while (i < s.size()) {
    if (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (!wordNeedsEscape(w)) {
        i += 8;
        continue;
      }
    }
    const auto u = static_cast<unsigned char>(s[i]);
    if (u >= 0x20 && u != '"' && u != '\\') {
      ++i;
      continue;
    }
    copyRun(i);
    *out++ = '\\';
    if (u < 0x20) {
      *out++ = 'u';
      *out++ = '0';
      *out++ = '0';
      *out++ = kHex[u >> 4];
      *out++ = kHex[u & 15];
    } else {
      *out++ = static_cast<char>(u);
    }
    run = ++i;
  }
  copyRun(s.size());
  return out;
}

void appendJsonEscaped(std::string_view s, Buffer& out) {
  char* start = out.extend(s.size() * kJsonEscapeGrowth);
  char* end = writeJsonEscaped(s, start);
  out.truncateEnd(static_cast<size_t>(start + s.size() * kJsonEscapeGrowth - end));
}

void TextReplyWriter::status(int status) {
  out_.append("HTTP/1.1 ");
  out_.appendDecimal(static_cast<uint64_t>(status));
  out_.append(' ');
  out_.append(reasonPhrase(status));
  out_.append("\r\n");
}

void TextReplyWriter::field(std::string_view name, std::string_view value) {
  appendFieldLine(out_, name, value);
}

void TextReplyWriter::body(std::string_view body) {
  out_.append("\r\n");
  out_.append(body);
}

namespace {

// Decimal digits of n, in `digits`.
std::string_view decimal(uint64_t n, char (&digits)[24]) {
  char* p = digits + sizeof digits;
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  return std::string_view(p, static_cast<size_t>(digits + sizeof digits - p));
}

void writeConnection(bool close, bool keep_alive_1_0, ReplyWriter& out) {
  if (close) {
    out.field("Connection", "close");
  } else if (keep_alive_1_0) {
    out.field("Connection", "keep-alive");
  }
}

void writeCommonFields(const LocalReply& reply, ReplyWriter& out) {
  if (!reply.request_id.empty()) out.field("X-Request-Id", reply.request_id);
  if (!reply.www_authenticate.empty()) out.field("WWW-Authenticate", reply.www_authenticate);
  if (!reply.allow.empty()) out.field("Allow", reply.allow);
  writeConnection(reply.close, reply.keep_alive_1_0, out);
  out.fieldLines(reply.extra_headers);
  out.fieldLines(reply.filter_headers);
}

// A trailers-only response: the status and the message travel in the head, which HTTP/2 sends
// as one HEADERS frame with END_STREAM.
void writeGrpcReply(const LocalReply& reply, ReplyWriter& out) {
  out.status(200);
  out.field("Content-Type", reply.grpc_content_type);
  char digits[24];
  out.field("Grpc-Status", decimal(static_cast<uint64_t>(grpcStatusOf(statusOf(reply.code))),
                                   digits));
  Buffer message(3 * reply.message.size() + 1);
  appendGrpcMessage(reply.message, message);
  out.field("Grpc-Message", message.view());
  out.field("Content-Length", "0");
  writeCommonFields(reply, out);
  out.body({});
}

}  // namespace

int grpcStatusOf(int http_status) {
  switch (http_status) {
    case 400:
      return 13;  // INTERNAL, as gRPC maps HTTP statuses it did not expect
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 12;  // UNIMPLEMENTED
    case 405:
      return 12;
    case 408:
      return 4;  // DEADLINE_EXCEEDED
    case 413:
      return 8;  // RESOURCE_EXHAUSTED
    case 429:
      return 8;
    case 502:
      return 14;  // UNAVAILABLE
    case 503:
      return 14;
    case 504:
      return 4;
    case 500:
      return 13;
    default:
      return http_status >= 500 ? 14 : 2;  // UNKNOWN
  }
}

bool isGrpcContentType(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (content_type.size() < kGrpc.size() ||
      !equalsIgnoreCase(content_type.substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  if (content_type.size() == kGrpc.size()) return true;
  char next = content_type[kGrpc.size()];
  return next == '+' || next == ';' || next == '-';
}

std::optional<uint64_t> parseGrpcTimeoutMs(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  uint64_t amount = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    amount = amount * 10 + static_cast<uint64_t>(c - '0');
  }
  switch (value.back()) {
    case 'H':
      return amount * 3'600'000;
    case 'M':
      return amount * 60'000;
    case 'S':
      return amount * 1000;
    case 'm':
      return amount;
    case 'u':
      return (amount + 999) / 1000;
    case 'n':
      return (amount + 999'999) / 1'000'000;
    default:
      return std::nullopt;
  }
}

void appendGrpcMessage(std::string_view message, Buffer& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : message) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u <= 0x7e && c != '%') {
      out.append(c);
    } else {
      char esc[3] = {'%', kHex[u >> 4], kHex[u & 15]};
      out.append(std::string_view(esc, 3));
    }
  }
}

void writeEmptyReply(const EmptyReply& reply, ReplyWriter& out) {
  out.status(reply.status);
  // RFC 9110 §8.6: a 204 has no Content-Length; anything else says its body is empty.
  if (reply.status != 204) out.field("Content-Length", "0");
  if (!reply.request_id.empty()) out.field("X-Request-Id", reply.request_id);
  writeConnection(reply.close, reply.keep_alive_1_0, out);
  out.fieldLines(reply.headers);
  out.body({});
}

void writeLocalReply(const LocalReply& reply, ReplyWriter& out) {
  if (reply.grpc) {
    writeGrpcReply(reply, out);
    return;
  }
  int status = statusOf(reply.code);
  // The body first, so Content-Length is known.
  Buffer body(256 + reply.message.size() + reply.request_id.size());
  body.append(R"({"error":{"status":)");
  body.appendDecimal(static_cast<uint64_t>(status));
  body.append(R"(,"code":")");
  body.append(codeName(reply.code));
  body.append(R"(","message":")");
  appendJsonEscaped(reply.message, body);
  body.append(R"(","request_id":")");
  appendJsonEscaped(reply.request_id, body);
  body.append("\"}}\n");

  out.status(status);
  out.field("Content-Type", "application/json");
  char digits[24];
  out.field("Content-Length", decimal(body.size(), digits));
  writeCommonFields(reply, out);
  out.body(body.view());
}

}  // namespace portico::http
