#pragma once
// A request that reaches its upstream as a gRPC call although the client did not speak gRPC over
// HTTP/2: a REST/JSON request transcoded by google.api.http rules, or a gRPC-Web request. One
// object per request, made at dispatch and destroyed with the request.
//
// The request side is whole: the session collects the body and finishRequest() makes the gRPC
// request body of it. The response side streams: the session feeds what the upstream's HTTP/2
// stream gives (as our HTTP/2 client presents it: HTTP/1.1 text, a chunked body, the trailers
// as its trailer section) and drains an HTTP/1.1 response for the client, which it then relays
// like any upstream's.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/chunked.hpp"
#include "http/http1_parser.hpp"
#include "transcode/catalog.hpp"
#include "transcode/grpc_compression.hpp"
#include "transcode/grpc_frames.hpp"

namespace portico::transcode {

class GrpcCall {
 public:
  // `max_message`: the largest message read from the upstream (decompressed).
  explicit GrpcCall(size_t max_message) : max_message_(max_message), frames_(max_message) {}
  virtual ~GrpcCall() = default;

  // The request body as it is read (decoded from chunks).
  std::string& requestBody() { return request_body_; }
  // The request body is whole: `framed` gets the gRPC request body (length-prefixed messages);
  // false with `error` (the client's mistake, a 400).
  virtual bool finishRequest(std::string& framed, std::string& error) = 0;

  // Starts reading a response (again, for a retry).
  void startResponse();
  void feed(std::string_view raw);
  // The upstream's stream ended (after all it sent was fed).
  void feedEnd();
  // The client's response made so far and not yet drained.
  size_t pending() const { return out_.size() - out_pos_; }
  size_t drain(char* to, size_t max);
  // The client's response is made (whole, or cut short): the upstream is not read any more.
  bool ended() const { return ended_; }
  // Compressed messages go on as they are (gRPC-Web: the browser gets grpc-encoding too).
  // Otherwise the call asks the upstream for identity, and inflates what comes compressed.
  virtual bool keepsCompressed() const { return false; }

 protected:
  // What the upstream says, in order: its head (HTTP status 200 and gRPC's content-type for a
  // real gRPC answer), its messages, then its status: from the trailers, or from the head of a
  // trailers-only answer. `broken` replaces the status when the answer is not valid gRPC.
  virtual void onHead(const http::ResponseHead& head) = 0;
  // `flags`: the frame's; compressed only when keepsCompressed() (else it is inflated first).
  virtual void onMessage(std::string_view message, uint8_t flags) = 0;
  // `fields`: the trailers' "name: value\r\n" lines, or with `in_head` a trailers-only head's.
  virtual void onStatus(int grpc_status, std::string_view grpc_message, std::string_view fields,
                        bool in_head) = 0;
  virtual void onBroken(std::string_view why) = 0;
  // A new response begins (a retry): what the last one left is forgotten.
  virtual void restart() = 0;

  void appendChunk(std::string_view data);
  void appendLastChunk() { out_.append("0\r\n\r\n"); }
  // The response is complete; whatever was not sent is cut.
  void end() { ended_ = true; }
  // The upstream's answer cannot be used: nothing more is read of it, and onBroken() says why.
  void fail(std::string_view why);

  std::string request_body_;
  std::string out_;  // HTTP/1.1 bytes for the client

 private:
  enum class Phase : uint8_t { Head, Body, Done };
  void readHead();
  void readBody(std::string_view data);
  void readFrames();
  void finishWith(std::string_view fields, bool in_head);

  size_t max_message_;
  Phase phase_ = Phase::Head;
  MessageEncoding encoding_ = MessageEncoding::Identity;  // the upstream's grpc-encoding
  std::string inflated_;
  bool ended_ = false;
  size_t out_pos_ = 0;
  std::string head_;  // the upstream's head as it comes
  size_t head_scanned_ = 0;
  http::ResponseHead parsed_head_;
  http::BodyFraming framing_ = http::BodyFraming::None;
  uint64_t remaining_ = 0;
  http::ChunkedDecoder chunked_;
  std::string decoded_;
  std::string trailers_;
  FrameReader frames_;
};

// How a transcoded route answers a server-streaming method.
enum class StreamFormat : uint8_t { Ndjson, JsonArray };

// A REST/JSON request mapped to `match`'s method. The path and query bindings are made at
// construction (while the request head is valid); bindFailed() tells whether they failed.
std::unique_ptr<GrpcCall> makeJsonCall(std::shared_ptr<const Catalog> catalog,
                                       const RuleMatch& match, std::string_view query,
                                       const JsonOptions& options, StreamFormat stream_format,
                                       std::string_view request_id, std::string& error);

// A gRPC-Web request; `content_type` is the client's (answered with the same), text mode when
// it is application/grpc-web-text*.
std::unique_ptr<GrpcCall> makeWebCall(std::string_view content_type);
// Whether a content-type is gRPC-Web's, and its text (base64) form.
bool isGrpcWebContentType(std::string_view content_type);
bool isGrpcWebTextContentType(std::string_view content_type);

}  // namespace portico::transcode
