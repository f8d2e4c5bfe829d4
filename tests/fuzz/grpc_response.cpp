// Fuzz target: a gRPC answer as the HTTP/2 client presents it (head, chunked DATA, trailers),
// read through a gRPC-Web call (src/transcode/grpc_call.hpp), and the gRPC-Web text decoder.
// The upstream is not trusted: whatever it sends, the call ends once the stream does, and what
// the client gets is one well-formed HTTP/1.1 answer whose chunked body is whole and, in binary
// mode, a run of frames that ends with the trailer frame.
//
// Input: a mode byte (bit 0: text mode; bit 1: also decode the rest as gRPC-Web text), a byte
// that says where the upstream's bytes are cut in two, then the upstream's bytes.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "http/chunked.hpp"
#include "transcode/grpc_call.hpp"
#include "transcode/grpc_frames.hpp"

using namespace portico;

namespace {

void checkFrames(std::string_view bytes) {
  bool trailers_seen = false;
  while (!bytes.empty()) {
    FUZZ_CHECK(!trailers_seen);
    FUZZ_CHECK(bytes.size() >= transcode::kFrameHeader);
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const size_t size = (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | p[4];
    FUZZ_CHECK(bytes.size() >= transcode::kFrameHeader + size);
    trailers_seen = p[0] == transcode::kTrailerFlag;
    bytes.remove_prefix(transcode::kFrameHeader + size);
  }
  FUZZ_CHECK(trailers_seen);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const std::string_view raw(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t cut = raw.empty() ? 0 : data[1] % (raw.size() + 1);
  const bool text = (mode & 1) != 0;

  auto call = transcode::makeWebCall(text ? "application/grpc-web-text" : "application/grpc-web");
  call->startResponse();
  call->feed(raw.substr(0, cut));
  call->feed(raw.substr(cut));
  call->feedEnd();
  FUZZ_CHECK(call->ended());
  std::string out(call->pending(), '\0');
  FUZZ_CHECK(call->drain(out.data(), out.size()) == out.size());
  if (!out.empty()) {
    FUZZ_CHECK(out.starts_with("HTTP/1.1 200 OK\r\n"));
    const size_t head_end = out.find("\r\n\r\n");
    FUZZ_CHECK(head_end != std::string::npos);
    const std::string body = out.substr(head_end + 4);
    http::ChunkedDecoder decoder;
    std::string decoded;
    const auto r = decoder.feed(body.data(), body.size(), &decoded);
    FUZZ_CHECK(!r.error && r.done && r.consumed == body.size());
    if (text) {
      transcode::Base64StreamDecoder base64;
      std::string frames;
      FUZZ_CHECK(base64.feed(decoded, frames) && base64.complete());
      checkFrames(frames);
    } else {
      checkFrames(decoded);
    }
  }
  if ((mode & 2) != 0) {
    transcode::Base64StreamDecoder base64;
    std::string decoded;
    if (base64.feed(raw, decoded)) FUZZ_CHECK(decoded.size() <= (raw.size() + 3) / 4 * 3);
  }
  return 0;
}
