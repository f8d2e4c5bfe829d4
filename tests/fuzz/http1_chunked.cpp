// Fuzz target: the chunked body decoder. Bytes reach it in whatever pieces the socket gives, so
// the outcome must not depend on where the input is split: one feed over everything and feeds
// over random pieces must agree on the end of the body, the error and the decoded data.
//
// Input: bytes 0-3 are the piece sizes (1 to 256, used in turn); the rest is the body.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "http/chunked.hpp"

namespace {

using namespace portico;

struct Outcome {
  size_t consumed = 0;
  bool done = false;
  bool error = false;
  std::string decoded;
  uint64_t data_bytes = 0;
  size_t trailer_bytes = 0;
};

// Feeds `body` in pieces of sizes[0], sizes[1], ... (cycling), as a connection would, stopping
// at the end of the body or at an error.
Outcome feedInPieces(http::ChunkedDecoder& decoder, std::string_view body, const size_t* sizes,
                     size_t size_count, bool keep_data) {
  Outcome out;
  size_t at = 0;
  for (size_t i = 0; at < body.size(); ++i) {
    const size_t len = std::min(sizes[i % size_count], body.size() - at);
    const auto r = decoder.feed(body.data() + at, len, keep_data ? &out.decoded : nullptr);
    FUZZ_CHECK(r.consumed <= len && r.trailer_bytes <= r.consumed);
    FUZZ_CHECK(decoder.announcedBytes() >= decoder.dataBytes());
    out.consumed += r.consumed;
    out.trailer_bytes += r.trailer_bytes;
    at += len;
    if (r.error) {
      FUZZ_CHECK(!r.done);
      out.error = true;
      break;
    }
    FUZZ_CHECK(r.done == decoder.done());
    if (r.done) {
      out.done = true;
      break;
    }
    // Until the body ends, every byte offered belongs to it.
    FUZZ_CHECK(r.consumed == len);
  }
  out.data_bytes = decoder.dataBytes();
  return out;
}

void checkSame(const Outcome& a, const Outcome& b, bool compare_data) {
  FUZZ_CHECK(a.consumed == b.consumed);
  FUZZ_CHECK(a.done == b.done);
  FUZZ_CHECK(a.error == b.error);
  FUZZ_CHECK(a.data_bytes == b.data_bytes);
  FUZZ_CHECK(a.trailer_bytes == b.trailer_bytes);
  if (compare_data) FUZZ_CHECK(a.decoded == b.decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputReader in(data, size);
  size_t sizes[4];
  for (size_t& s : sizes) s = size_t{in.byte()} + 1;
  const std::string_view body = in.rest();
  const size_t whole[1] = {body.size() + 1};

  http::ChunkedDecoder decoder;
  const Outcome once = feedInPieces(decoder, body, whole, 1, true);
  FUZZ_CHECK(once.decoded.size() == once.data_bytes);
  FUZZ_CHECK(once.data_bytes + once.trailer_bytes <= once.consumed);
  if (once.done) {
    // Nothing after the end of the body is taken.
    const auto after = decoder.feed("0\r\n\r\n", 5);
    FUZZ_CHECK(after.consumed == 0 && after.done && !after.error);
  }

  // reset() makes a decoder as good as new, whatever state it was left in.
  decoder.reset();
  checkSame(once, feedInPieces(decoder, body, sizes, 4, true), true);

  http::ChunkedDecoder counting;  // without data_out: validation and framing only
  checkSame(once, feedInPieces(counting, body, sizes + 1, 3, false), false);
  return 0;
}
