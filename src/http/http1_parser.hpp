#pragma once
// A strict HTTP/1.1 message-head parser and chunked-body decoder (RFC 9112). Strict means that
// anything two implementations could read differently (request smuggling material) is an error:
// Content-Length with Transfer-Encoding, duplicate or malformed lengths, codings other than a
// single "chunked", obs-fold, whitespace before the colon, bare CR or LF, control characters.
// The parser does not copy: fields are views into the caller's buffer.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/header.hpp"

namespace portico::http {

enum class ParseStatus : uint8_t { Incomplete, Complete, Error };

enum class ParseError : uint8_t {
  None,
  BareLineFeed,
  BareCarriageReturn,
  BadRequestLine,
  BadMethod,
  BadTarget,
  BadVersion,
  BadStatusLine,
  BadHeaderName,
  BadHeaderValue,
  WhitespaceBeforeColon,
  ObsFold,
  BadContentLength,
  DuplicateContentLength,
  LengthWithChunked,
  BadTransferEncoding,
  MissingHost,
  DuplicateHost,
  BadHost,
  UriTooLong,          // 414
  HeadersTooLarge,     // 431
  TooManyHeaders,      // 431
};

// A short, client-safe description, used as the JSON error message.
const char* describe(ParseError error);

enum class BodyFraming : uint8_t { None, Length, Chunked, UntilClose };

struct MessageHead {
  std::vector<HeaderField> headers;  // in order; capacity is reused across messages
  BodyFraming framing = BodyFraming::None;
  uint64_t content_length = 0;  // iff framing == Length
  uint8_t version_minor = 1;    // HTTP/1.0 or HTTP/1.1
  bool keep_alive = true;
  bool connection_lists_headers = false;  // Connection names fields other than close/keep-alive
  bool upgrade = false;                   // Connection: upgrade
  size_t head_size = 0;                   // bytes up to and including the blank line
};

struct RequestHead : MessageHead {
  std::string_view method;
  std::string_view target;  // as received
  std::string_view path;    // the path part of the target (origin-form or absolute-form)
  std::string_view query;   // after '?', without it
  std::string_view host;    // Host header (or the authority of an absolute-form target)
  bool expect_continue = false;
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string_view reason;
};

struct RequestLimits {
  size_t max_header_bytes = 32 * 1024;
  size_t max_uri_bytes = 8 * 1024;
  size_t max_headers = 256;
};

// Finds the end of a message head in data[0, len), checking line endings as it goes. `scanned`
// carries progress across calls (start at 0 for each message) so bytes are looked at once.
// Complete: head_end is the offset just past the blank line.
ParseStatus findHeadEnd(const char* data, size_t len, size_t& scanned, size_t& head_end,
                        ParseError& error);

// Parses a complete request head (data[0, head_end) as found by findHeadEnd).
ParseStatus parseRequestHead(const char* data, size_t head_end, const RequestLimits& limits,
                             RequestHead& out, ParseError& error);

// Parses a complete response head. `request_method` decides whether a body follows (HEAD).
ParseStatus parseResponseHead(const char* data, size_t head_end, std::string_view request_method,
                              ResponseHead& out, ParseError& error);

// True when `name` is a field that belongs to one connection only (RFC 9110 §7.6.1).
bool isHopByHop(std::string_view name);
// True when one of the Connection fields of `headers` lists `name`.
bool connectionListsField(HeaderList headers, std::string_view name);

// Incremental validator for a chunked body. It does not copy: feed() reports how many input
// bytes belong to the body (chunk framing included), so a proxy can pass them on verbatim, and
// optionally appends the decoded data to `data_out` (for consumers that need the payload).
class ChunkedDecoder {
 public:
  struct Result {
    size_t consumed = 0;  // bytes of input that belong to the chunked body
    bool done = false;    // the last chunk and trailers were seen
    bool error = false;
  };

  void reset() { *this = ChunkedDecoder{}; }
  Result feed(const char* data, size_t len, std::string* data_out = nullptr);
  uint64_t dataBytes() const { return data_bytes_; }
  bool done() const { return state_ == State::Done; }

 private:
  enum class State : uint8_t {
    SizeStart, Size, Ext, SizeLf, Data, DataCr, DataLf,
    TrailerStart, TrailerLine, TrailerLf, FinalLf, Done
  };
  State state_ = State::SizeStart;
  uint64_t remaining_ = 0;
  uint64_t data_bytes_ = 0;
  uint32_t line_bytes_ = 0;   // length of the current size/ext or trailer line
  uint32_t trailer_bytes_ = 0;
  uint8_t size_digits_ = 0;
};

}  // namespace portico::http
