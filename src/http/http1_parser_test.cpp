#include "http/http1_parser.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "http/chars.hpp"

namespace portico::http {
namespace {

struct Parsed {
  std::shared_ptr<std::string> raw;  // the views in head point into it
  ParseStatus status;
  ParseError error = ParseError::None;
  RequestHead head;
};

Parsed parseRequest(const std::string& text, RequestLimits limits = {}) {
  Parsed p;
  p.raw = std::make_shared<std::string>(text);
  const std::string& raw = *p.raw;
  size_t scanned = 0;
  size_t head_end = 0;
  p.status = findHeadEnd(raw.data(), raw.size(), scanned, head_end, p.error);
  if (p.status != ParseStatus::Complete) return p;
  p.status = parseRequestHead(raw.data(), head_end, limits, p.head, p.error);
  return p;
}

ParseError requestError(const std::string& raw) {
  Parsed p = parseRequest(raw);
  EXPECT_EQ(p.status, ParseStatus::Error) << raw;
  return p.error;
}

TEST(Http1Request, ParsesSimpleGet) {
  Parsed p = parseRequest("GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::Complete);
  EXPECT_EQ(p.head.method, "GET");
  EXPECT_EQ(p.head.path, "/a/b");
  EXPECT_EQ(p.head.query, "x=1");
  EXPECT_EQ(p.head.host, "example.com");
  EXPECT_EQ(p.head.framing, BodyFraming::None);
  EXPECT_TRUE(p.head.keep_alive);
  ASSERT_EQ(p.head.headers.size(), 2u);
  EXPECT_EQ(p.head.headers[1].name, "Accept");
  EXPECT_EQ(p.head.headers[1].value, "*/*");
}

TEST(Http1Request, IncompleteUntilBlankLine) {
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n";
  size_t scanned = 0;
  size_t end = 0;
  ParseError error = ParseError::None;
  EXPECT_EQ(findHeadEnd(raw.data(), raw.size(), scanned, end, error), ParseStatus::Incomplete);
  raw += "\r\n";
  EXPECT_EQ(findHeadEnd(raw.data(), raw.size(), scanned, end, error), ParseStatus::Complete);
  EXPECT_EQ(end, raw.size());
}

TEST(Http1Request, TrimsOptionalWhitespaceInValues) {
  Parsed p = parseRequest("GET / HTTP/1.1\r\nHost:   a  \r\nX:\t v \t\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::Complete);
  EXPECT_EQ(p.head.host, "a");
  EXPECT_EQ(p.head.headers[1].value, "v");
}

TEST(Http1Request, ContentLengthBody) {
  Parsed p = parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::Complete);
  EXPECT_EQ(p.head.framing, BodyFraming::Length);
  EXPECT_EQ(p.head.content_length, 42u);
}

TEST(Http1Request, ChunkedBody) {
  Parsed p = parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::Complete);
  EXPECT_EQ(p.head.framing, BodyFraming::Chunked);
}

TEST(Http1Request, KeepAliveRules) {
  EXPECT_FALSE(
      parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").head.keep_alive);
  EXPECT_FALSE(parseRequest("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
  EXPECT_TRUE(parseRequest("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").head.keep_alive);
  Parsed p = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo\r\n\r\n");
  EXPECT_TRUE(p.head.keep_alive);
  EXPECT_TRUE(p.head.connection_lists_headers);
  EXPECT_TRUE(connectionListsField(p.head.headers, "x-foo"));
  EXPECT_FALSE(connectionListsField(p.head.headers, "x-bar"));
}

TEST(Http1Request, ExpectContinue) {
  Parsed p = parseRequest(
      "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
  EXPECT_TRUE(p.head.expect_continue);
}

TEST(Http1Request, AbsoluteFormTakesHostFromTarget) {
  Parsed p = parseRequest("GET http://api.example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_EQ(p.status, ParseStatus::Complete);
  EXPECT_EQ(p.head.host, "api.example.com:8080");
  EXPECT_EQ(p.head.path, "/x");
  EXPECT_EQ(p.head.query, "y");
}

TEST(Http1Request, Http10WithoutHostIsAccepted) {
  EXPECT_EQ(parseRequest("GET / HTTP/1.0\r\n\r\n").status, ParseStatus::Complete);
}

// Each of these is request-smuggling or ambiguity material: refused, never guessed at.
TEST(Http1Request, RefusesAmbiguousFraming) {
  EXPECT_EQ(requestError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::LengthWithChunked);
  EXPECT_EQ(
      requestError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
      ParseError::DuplicateContentLength);
  EXPECT_EQ(requestError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n"),
            ParseError::BadContentLength);
  EXPECT_EQ(requestError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"),
            ParseError::BadContentLength);
  EXPECT_EQ(requestError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"),
            ParseError::BadContentLength);
  EXPECT_EQ(
      requestError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"),
      ParseError::BadContentLength);
  EXPECT_EQ(requestError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            ParseError::BadTransferEncoding);
  EXPECT_EQ(requestError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::BadTransferEncoding);
  EXPECT_EQ(requestError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"),
            ParseError::BadTransferEncoding);
  EXPECT_EQ(requestError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::BadTransferEncoding);
}

TEST(Http1Request, RefusesMalformedLines) {
  EXPECT_EQ(requestError("GET / HTTP/1.1\nHost: a\r\n\r\n"), ParseError::BareLineFeed);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n"),
            ParseError::BareCarriageReturn);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), ParseError::ObsFold);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), ParseError::WhitespaceBeforeColon);
  EXPECT_EQ(requestError(std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35)),
            ParseError::BadHeaderValue);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: a\r\nX-\x01: a\r\n\r\n"),
            ParseError::BadHeaderName);
  EXPECT_EQ(requestError("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), ParseError::BadMethod);
  EXPECT_EQ(requestError("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), ParseError::BadTarget);
  EXPECT_EQ(requestError("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), ParseError::BadTarget);
  EXPECT_EQ(requestError("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), ParseError::BadTarget);
  EXPECT_EQ(requestError("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), ParseError::BadVersion);
  EXPECT_EQ(requestError("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), ParseError::BadRequestLine);
  EXPECT_EQ(requestError("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), ParseError::BadRequestLine);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\n\r\n"), ParseError::MissingHost);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            ParseError::DuplicateHost);
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), ParseError::BadHost);
  EXPECT_EQ(requestError("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), ParseError::BadTarget);
}

TEST(Http1Request, EnforcesLimits) {
  RequestLimits limits{64, 16, 2};
  std::string long_target = "GET /" + std::string(20, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(parseRequest(long_target, limits).error, ParseError::UriTooLong);
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(64, 'b') + "\r\n\r\n";
  EXPECT_EQ(parseRequest(big, limits).error, ParseError::HeadersTooLarge);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
  EXPECT_EQ(parseRequest(many, limits).error, ParseError::TooManyHeaders);
}

ResponseHead parseResponse(const std::string& text, ParseStatus expected,
                           std::string_view method = "GET") {
  static std::vector<std::unique_ptr<std::string>> keep;  // the views in head point into these
  keep.push_back(std::make_unique<std::string>(text));
  const std::string& raw = *keep.back();
  ResponseHead head;
  size_t scanned = 0;
  size_t end = 0;
  ParseError error = ParseError::None;
  ParseStatus st = findHeadEnd(raw.data(), raw.size(), scanned, end, error);
  if (st == ParseStatus::Complete) st = parseResponseHead(raw.data(), end, method, head, error);
  EXPECT_EQ(st, expected) << raw;
  return head;
}

TEST(Http1Response, Framing) {
  auto h = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", ParseStatus::Complete);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.framing, BodyFraming::Length);
  h = parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ParseStatus::Complete);
  EXPECT_EQ(h.framing, BodyFraming::Chunked);
  h = parseResponse("HTTP/1.1 200 OK\r\n\r\n", ParseStatus::Complete);
  EXPECT_EQ(h.framing, BodyFraming::UntilClose);
  EXPECT_FALSE(h.keep_alive);
  h = parseResponse("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", ParseStatus::Complete);
  EXPECT_EQ(h.framing, BodyFraming::None);
  h = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", ParseStatus::Complete, "HEAD");
  EXPECT_EQ(h.framing, BodyFraming::None);
  h = parseResponse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", ParseStatus::Complete);
  EXPECT_EQ(h.status, 200);
}

TEST(Http1Response, RefusesInvalidResponses) {
  parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                ParseStatus::Error);
  parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseStatus::Error);
  parseResponse("HTTP/1.1 2000 OK\r\n\r\n", ParseStatus::Error);
  parseResponse("HTTP/2 200 OK\r\n\r\n", ParseStatus::Error);
  parseResponse("garbage\r\n\r\n", ParseStatus::Error);
  parseResponse("HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n", ParseStatus::Error);
}

TEST(Http1, HopByHop) {
  EXPECT_TRUE(isHopByHop("Connection"));
  EXPECT_TRUE(isHopByHop("keep-alive"));
  EXPECT_TRUE(isHopByHop("TE"));
  EXPECT_TRUE(isHopByHop("Transfer-Encoding"));
  EXPECT_TRUE(isHopByHop("Upgrade"));
  EXPECT_TRUE(isHopByHop("Proxy-Connection"));
  EXPECT_FALSE(isHopByHop("Content-Length"));
  EXPECT_FALSE(isHopByHop("X-Foo"));
}

TEST(Http2Field, RefusesWhatHttp1RenderingWouldSplit) {
  EXPECT_TRUE(isValidHttp2Field("x-a", "b c"));
  EXPECT_TRUE(isValidHttp2Field(":path", "/x"));
  EXPECT_TRUE(isValidHttp2Field("x-empty", ""));
  EXPECT_FALSE(isValidHttp2Field("x-a", "b\r\nX-Injected: 1"));
  EXPECT_FALSE(isValidHttp2Field("x-a", "b\nc"));
  EXPECT_FALSE(isValidHttp2Field("x-a", std::string_view("b\0c", 3)));
  EXPECT_FALSE(isValidHttp2Field("X-Upper", "v"));
  EXPECT_FALSE(isValidHttp2Field("x a", "v"));
  EXPECT_FALSE(isValidHttp2Field("", "v"));
  EXPECT_FALSE(isValidHttp2Field("x-a", " padded"));
}

TEST(HeaderName, HasUnderscoreAtAnyPosition) {
  EXPECT_FALSE(hasUnderscore(""));
  EXPECT_FALSE(hasUnderscore("x-consumer-name-long"));
  for (std::string name : {"_", "X_A", "x-consumer_name", "x-consumer-name-lo_g", "abcdefg_"}) {
    EXPECT_TRUE(hasUnderscore(name)) << name;
  }
  EXPECT_FALSE(hasUnderscore("\x5e\x60\xdf\x9f-abcdefghij"));  // neighbours of 0x5f
}

TEST(RequestLine, HasHttpVersion) {
  EXPECT_TRUE(hasHttpVersion("GET / HTTP/1.1"));
  EXPECT_TRUE(hasHttpVersion("GET / HTTP/1.0"));
  EXPECT_FALSE(hasHttpVersion("GET /"));  // HTTP/0.9
  EXPECT_FALSE(hasHttpVersion("GET /HTTP/1.1"));
  EXPECT_FALSE(hasHttpVersion("GET / HTTP/1.x"));
  EXPECT_FALSE(hasHttpVersion(""));
}

// The word-at-a-time check agrees with the byte one for every byte value at every position
// of values of several lengths (the tail and whole words both).
TEST(FieldValue, WordCheckAgreesWithByteCheck) {
  for (size_t length : {1u, 7u, 8u, 9u, 16u, 23u}) {
    for (size_t at = 0; at < length; ++at) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string value(length, 'v');
        value[at] = static_cast<char>(byte);
        EXPECT_EQ(isFieldValue(value), isFieldValueChar(static_cast<char>(byte)))
            << "length " << length << " at " << at << " byte " << byte;
      }
    }
  }
  EXPECT_TRUE(isFieldValue(""));
  EXPECT_TRUE(isFieldValue("text/html;\tq=0.9, caf\xc3\xa9 ~ !"));
  EXPECT_FALSE(isFieldValue("a value long enough\x7f"));
}

// The word-at-a-time case folding agrees with the byte one for every pair of byte values, in a
// whole word and in the tail.
TEST(CaseFolding, WordsAgreeWithBytes) {
  for (size_t length : {8u, 11u}) {
    const size_t at = length - 1;
    for (int x = 0; x < 256; ++x) {
      std::string a(length, 'k');
      a[at] = static_cast<char>(x);
      std::string lowered(a.size(), ' ');
      asciiLowerCopy(lowered.data(), a.data(), a.size());
      ASSERT_EQ(lowered[at], asciiLower(a[at])) << x;
      for (int y = 0; y < 256; ++y) {
        std::string b(length, 'K');
        b[at] = static_cast<char>(y);
        ASSERT_EQ(equalsIgnoreCase(a, b),
                  asciiLower(static_cast<char>(x)) == asciiLower(static_cast<char>(y)))
            << x << " " << y << " length " << length;
      }
    }
  }
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-length"));
  EXPECT_FALSE(equalsIgnoreCase("Content-Lengti", "content-length"));
  EXPECT_FALSE(equalsIgnoreCase("content-length", "content-lengthx"));
}

// What the HTTP/2 codec hands over (method, target, fields) gets the HTTP/1.1 parser's checks.
TEST(CheckedRequestHead, FramingHostAndTarget) {
  RequestHead head;
  ParseError error = ParseError::None;
  head.method = "POST";
  head.target = "/a/b?x=1";
  head.headers = {{"host", "api.example:8080"}, {"content-length", "12"}};
  ASSERT_EQ(checkRequestHead(RequestLimits{}, head, error), ParseStatus::Complete);
  EXPECT_EQ(head.path, "/a/b");
  EXPECT_EQ(head.query, "x=1");
  EXPECT_EQ(head.host, "api.example:8080");
  EXPECT_EQ(head.framing, BodyFraming::Length);
  EXPECT_EQ(head.content_length, 12u);

  head.headers = {{"content-length", "12"}};
  EXPECT_EQ(checkRequestHead(RequestLimits{}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::MissingHost);

  head.headers = {{"host", "a"}, {"content-length", "1"}, {"content-length", "2"}};
  EXPECT_EQ(checkRequestHead(RequestLimits{}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::DuplicateContentLength);

  head.headers = {{"host", "a b"}};
  EXPECT_EQ(checkRequestHead(RequestLimits{}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::BadHost);

  head.headers = {{"host", "a"}};
  head.target = "api.example:443";  // CONNECT's authority: not a target we serve
  EXPECT_EQ(checkRequestHead(RequestLimits{}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::BadTarget);

  head.target = "/\x01";
  EXPECT_EQ(checkRequestHead(RequestLimits{}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::BadTarget);

  const std::string long_target = "/" + std::string(100, 'a');
  head.target = long_target;
  EXPECT_EQ(checkRequestHead(RequestLimits{1024, 64, 256}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::UriTooLong);

  head.target = "/";
  head.headers.assign(3, HeaderField{"host", "a"});
  EXPECT_EQ(checkRequestHead(RequestLimits{1024, 64, 2}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::TooManyHeaders);

  head.method = "G T";
  head.headers = {{"host", "a"}};
  EXPECT_EQ(checkRequestHead(RequestLimits{}, head, error), ParseStatus::Error);
  EXPECT_EQ(error, ParseError::BadMethod);
}

}  // namespace
}  // namespace portico::http
