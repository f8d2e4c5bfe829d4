// Fuzz target: the request head parser (findHeadEnd + parseRequestHead), as a client connection
// uses it: heads arriving in pieces, several limits, pipelined requests whose bodies are skipped
// by the framing the parser decided, and a RequestHead reused across requests.
//
// Input: byte 0 picks the limits (low 2 bits) and byte 1 the arrival step of findHeadEnd; the
// rest is the connection's bytes.

#include <cstdint>
#include <string_view>

#include "fuzz_util.hpp"
#include "http/http1_parser.hpp"
#include "http1_checks.hpp"

namespace {

using namespace portico;
using fuzz::within;

constexpr http::RequestLimits kLimits[] = {
    {},                                                  // the defaults
    {.max_header_bytes = 1024, .max_uri_bytes = 64, .max_headers = 8},
    {.max_header_bytes = 64, .max_uri_bytes = 8, .max_headers = 1},
    {.max_header_bytes = 1 << 20, .max_uri_bytes = 1 << 20, .max_headers = 4096},
};

constexpr std::string_view kPrimer =
    "POST http://primer.example:8080/p?q=1 HTTP/1.0\r\nHost: other\r\nContent-Length: 77\r\n"
    "Connection: keep-alive, upgrade, x-extra\r\nExpect: 100-continue\r\n\r\n";

bool isHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("-._~:[]%!$&'()*+,;=").find(c) != std::string_view::npos;
}

void checkRequest(const http::RequestHead& head, const char* data, size_t head_end,
                  const http::RequestLimits& limits) {
  fuzz::checkFields(head, data, head_end, limits.max_headers);
  FUZZ_CHECK(head_end <= limits.max_header_bytes);
  FUZZ_CHECK(!head.method.empty() && within(head.method, data, head_end));
  for (char c : head.method) FUZZ_CHECK(fuzz::isTchar(c));
  FUZZ_CHECK(!head.target.empty() && within(head.target, data, head_end));
  FUZZ_CHECK(head.target.size() <= limits.max_uri_bytes);
  for (char c : head.target) {
    const auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u > 0x20 && u < 0x7f && c != '#');
  }
  // origin-form, "*" for OPTIONS, or the path of an absolute-form target ("/" when it has none).
  if (head.path == "*") {
    FUZZ_CHECK(head.method == "OPTIONS" && head.target == "*");
  } else {
    FUZZ_CHECK(!head.path.empty() && head.path.front() == '/');
  }
  FUZZ_CHECK(head.path.find('?') == std::string_view::npos);
  FUZZ_CHECK(head.query.empty() || within(head.query, data, head_end));
  FUZZ_CHECK(head.version_minor <= 1);
  // HTTP/1.1 needs a Host (RFC 9112 §3.2), and only one: two could route differently.
  if (head.version_minor == 1) FUZZ_CHECK(!head.host.empty());
  FUZZ_CHECK(head.host.empty() || within(head.host, data, head_end));
  for (char c : head.host) FUZZ_CHECK(isHostChar(c));
  size_t hosts = 0;
  for (const auto& h : head.headers) hosts += http::equalsIgnoreCase(h.name, "host") ? 1 : 0;
  FUZZ_CHECK(hosts <= 1);
  // chunked is HTTP/1.1 only (RFC 9112 §6.1); there is no "until close" for a request.
  if (head.framing == http::BodyFraming::Chunked) FUZZ_CHECK(head.version_minor == 1);
  FUZZ_CHECK(head.framing != http::BodyFraming::UntilClose);
}

// A completed parse must not depend on what the reused RequestHead held before.
void checkSameAsFresh(const http::RequestHead& reused, const char* data, size_t head_end,
                      const http::RequestLimits& limits) {
  http::RequestHead fresh;
  http::ParseError error = http::ParseError::None;
  FUZZ_CHECK(http::parseRequestHead(data, head_end, limits, fresh, error) ==
             http::ParseStatus::Complete);
  FUZZ_CHECK(fresh.method == reused.method && fresh.target == reused.target);
  FUZZ_CHECK(fresh.path == reused.path && fresh.query == reused.query);
  FUZZ_CHECK(fresh.host == reused.host && fresh.version_minor == reused.version_minor);
  FUZZ_CHECK(fresh.framing == reused.framing && fresh.keep_alive == reused.keep_alive);
  FUZZ_CHECK(fresh.upgrade == reused.upgrade && fresh.expect_continue == reused.expect_continue);
  FUZZ_CHECK(fresh.connection_lists_headers == reused.connection_lists_headers);
  FUZZ_CHECK(fresh.headers.size() == reused.headers.size());
  if (fresh.framing == http::BodyFraming::Length) {
    FUZZ_CHECK(fresh.content_length == reused.content_length);
  }
}

// Where the body of an accepted request ends in `rest`, or npos when it does not (yet).
size_t bodyEnd(const http::RequestHead& head, std::string_view rest) {
  switch (head.framing) {
    case http::BodyFraming::Length:
      return head.content_length <= rest.size() ? static_cast<size_t>(head.content_length)
                                                : std::string_view::npos;
    case http::BodyFraming::Chunked: {
      http::ChunkedDecoder decoder;
      const auto r = decoder.feed(rest.data(), rest.size());
      FUZZ_CHECK(r.consumed <= rest.size());
      return r.done && !r.error ? r.consumed : std::string_view::npos;
    }
    case http::BodyFraming::None:
    case http::BodyFraming::UntilClose:
      break;
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputReader in(data, size);
  const http::RequestLimits& limits = kLimits[in.byte() & 3];
  const size_t step = size_t{in.byte()} + 1;
  std::string_view conn = in.rest();

  // One object for the connection, as the session keeps it (the headers' capacity is reused),
  // first filled by a request that sets every field the parser may leave behind.
  http::RequestHead head;
  http::ParseError primer_error = http::ParseError::None;
  FUZZ_CHECK(http::parseRequestHead(kPrimer.data(), kPrimer.size(), kLimits[0], head,
                                    primer_error) == http::ParseStatus::Complete);
  for (int request = 0; request < 8 && !conn.empty(); ++request) {
    // RFC 9112 §2.2: empty lines before a request are skipped, as the session does.
    while (conn.starts_with("\r\n")) conn.remove_prefix(2);
    size_t head_end = 0;
    http::ParseError error = http::ParseError::None;
    if (fuzz::findHeadEndBothWays(conn.data(), conn.size(), step, head_end, error) !=
        http::ParseStatus::Complete) {
      break;
    }
    if (http::parseRequestHead(conn.data(), head_end, limits, head, error) !=
        http::ParseStatus::Complete) {
      FUZZ_CHECK(error != http::ParseError::None);
      break;
    }
    checkRequest(head, conn.data(), head_end, limits);
    checkSameAsFresh(head, conn.data(), head_end, limits);
    const size_t body = bodyEnd(head, conn.substr(head_end));
    if (body == std::string_view::npos) break;
    conn.remove_prefix(head_end + body);
  }
  return 0;
}
