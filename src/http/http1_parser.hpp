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

#include "http/chunked.hpp"
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

// Whether a request line ends in " HTTP/d.d". A line without one (HTTP/0.9) is answered at once,
// not left waiting for a header section that will never come.
bool hasHttpVersion(std::string_view request_line);

// Parses a complete request head (data[0, head_end) as found by findHeadEnd).
ParseStatus parseRequestHead(const char* data, size_t head_end, const RequestLimits& limits,
                             RequestHead& out, ParseError& error);

// The checks of parseRequestHead for a head whose method, target and fields were read by
// another codec (HTTP/2's pseudo-fields and header list, each field already checked): the
// target's size and form, framing, Host. Sets path, query, host, framing and version 1.1.
ParseStatus checkRequestHead(const RequestLimits& limits, RequestHead& out, ParseError& error);

// Parses a complete response head. `request_method` decides whether a body follows (HEAD).
ParseStatus parseResponseHead(const char* data, size_t head_end, std::string_view request_method,
                              ResponseHead& out, ParseError& error);

// True when `name` is a field that belongs to one connection only (RFC 9110 §7.6.1).
bool isHopByHop(std::string_view name);
// True when one of the Connection fields of `headers` lists `name`.
bool connectionListsField(HeaderList headers, std::string_view name);

}  // namespace portico::http
