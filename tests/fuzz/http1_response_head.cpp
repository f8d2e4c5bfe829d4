// Fuzz target: the response head parser (findHeadEnd + parseResponseHead), as the upstream side
// and the HTTP/2 side use it, for requests of several methods: the framing it decides is what
// the gateway relays, so it must agree with RFC 9112 §6.3.
//
// Input: byte 0 picks the request method (low 2 bits) and byte 1 the arrival step of
// findHeadEnd; the rest is the upstream's bytes.

#include <cstdint>
#include <string_view>

#include "fuzz_util.hpp"
#include "http/http1_parser.hpp"
#include "http1_checks.hpp"

namespace {

using namespace portico;

constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "DELETE"};
// A response that sets every field the parser may leave behind.
constexpr std::string_view kPrimer =
    "HTTP/1.0 299 Primed\r\nContent-Length: 12345\r\nConnection: keep-alive, upgrade, x\r\n"
    "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n";

void checkResponse(const http::ResponseHead& head, std::string_view method, const char* data,
                   size_t head_end) {
  fuzz::checkFields(head, data, head_end, 512);
  FUZZ_CHECK(head.status >= 100 && head.status <= 599);
  FUZZ_CHECK(head.version_minor <= 1);
  FUZZ_CHECK(head.reason.empty() || fuzz::within(head.reason, data, head_end));
  for (char c : head.reason) FUZZ_CHECK(fuzz::isFieldValueChar(c));
  // No body after these, whatever the fields say (RFC 9112 §6.3 rules 1 and 2).
  if (method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304) {
    FUZZ_CHECK(head.framing == http::BodyFraming::None);
  }
  // A body delimited by the close cannot be followed by another response.
  if (head.framing == http::BodyFraming::UntilClose) FUZZ_CHECK(!head.keep_alive);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputReader in(data, size);
  const std::string_view method = kMethods[in.byte() & 3];
  const size_t step = size_t{in.byte()} + 1;
  const std::string_view bytes = in.rest();

  size_t head_end = 0;
  http::ParseError error = http::ParseError::None;
  if (fuzz::findHeadEndBothWays(bytes.data(), bytes.size(), step, head_end, error) !=
      http::ParseStatus::Complete) {
    return 0;
  }
  http::ResponseHead head;
  if (http::parseResponseHead(bytes.data(), head_end, method, head, error) !=
      http::ParseStatus::Complete) {
    FUZZ_CHECK(error != http::ParseError::None);
    return 0;
  }
  checkResponse(head, method, bytes.data(), head_end);

  // A connection parses each response into the same object: what the previous one left there
  // must not show through.
  http::ResponseHead reused;
  FUZZ_CHECK(http::parseResponseHead(kPrimer.data(), kPrimer.size(), "GET", reused, error) ==
             http::ParseStatus::Complete);
  FUZZ_CHECK(http::parseResponseHead(bytes.data(), head_end, method, reused, error) ==
             http::ParseStatus::Complete);
  FUZZ_CHECK(reused.status == head.status && reused.reason == head.reason &&
             reused.version_minor == head.version_minor && reused.framing == head.framing &&
             reused.keep_alive == head.keep_alive && reused.upgrade == head.upgrade &&
             reused.connection_lists_headers == head.connection_lists_headers &&
             reused.headers.size() == head.headers.size());
  if (head.framing == http::BodyFraming::Length) {
    FUZZ_CHECK(reused.content_length == head.content_length);
  }
  return 0;
}
