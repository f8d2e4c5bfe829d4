#include "transcode/grpc_call.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "http/header.hpp"
#include "http/local_reply.hpp"
#include "transcode/grpc_status.hpp"

namespace portico::transcode {
namespace {

// The value of field `name` among "name: value\r\n" lines (names compared without case).
std::string_view fieldValue(std::string_view lines, std::string_view name) {
  std::string_view found;
  http::forEachFieldLine(lines, [&](std::string_view field, std::string_view value) {
    if (found.empty() && http::equalsIgnoreCase(field, name)) found = value;
  });
  return found;
}

std::string_view fieldValueOf(http::HeaderList headers, std::string_view name) {
  const http::HeaderField* field = http::findHeader(headers, name);
  return field == nullptr ? std::string_view() : field->value;
}

}  // namespace

void GrpcCall::startResponse() {
  phase_ = Phase::Head;
  ended_ = false;
  out_.clear();
  out_pos_ = 0;
  head_.clear();
  head_scanned_ = 0;
  chunked_.reset();
  decoded_.clear();
  trailers_.clear();
  frames_.reset();
  encoding_ = MessageEncoding::Identity;
  restart();
}

void GrpcCall::feed(std::string_view raw) {
  if (phase_ == Phase::Done || raw.empty()) return;
  if (phase_ == Phase::Head) {
    const size_t before = head_.size();
    head_.append(raw);
    readHead();
    if (phase_ != Phase::Body) return;
    // What followed the head in this piece is body.
    const size_t head_bytes = parsed_head_.head_size - before;
    raw = raw.substr(head_bytes);
    head_.resize(parsed_head_.head_size);  // the head's views stay valid: no reallocation
  }
  readBody(raw);
}

void GrpcCall::feedEnd() {
  if (phase_ == Phase::Done) return;
  if (phase_ == Phase::Head) {
    // Nothing for the client: the session sees an upstream that did not answer, as it would
    // without a call (a 502, a retry, an outlier's failure).
    phase_ = Phase::Done;
    end();
    return;
  }
  fail("the upstream's stream ended without a gRPC status");
}

size_t GrpcCall::drain(char* to, size_t max) {
  const size_t n = std::min(max, pending());
  std::memcpy(to, out_.data() + out_pos_, n);
  out_pos_ += n;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  return n;
}

void GrpcCall::appendChunk(std::string_view data) {
  if (data.empty()) return;
  char size[20];
  const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out_.append(size, static_cast<size_t>(n));
  out_.append(data);
  out_.append("\r\n");
}

void GrpcCall::readHead() {
  size_t head_end = 0;
  http::ParseError error = http::ParseError::None;
  const auto status = http::findHeadEnd(head_.data(), head_.size(), head_scanned_, head_end, error);
  if (status == http::ParseStatus::Incomplete) return;
  if (status == http::ParseStatus::Error ||
      http::parseResponseHead(head_.data(), head_end, "POST", parsed_head_, error) !=
          http::ParseStatus::Complete) {
    fail("the upstream sent an invalid response head");
    return;
  }
  parsed_head_.head_size = head_end;
  if (parsed_head_.status != 200) {
    fail("the upstream answered HTTP " + std::to_string(parsed_head_.status) + ", not gRPC");
    return;
  }
  const http::HeaderField* type = http::findHeader(parsed_head_.headers, "content-type");
  const bool has_body =
      !(parsed_head_.framing == http::BodyFraming::Length && parsed_head_.content_length == 0);
  if (has_body && (type == nullptr || !http::isGrpcContentType(type->value))) {
    fail("the upstream answered " +
         (type == nullptr ? std::string("without a content-type")
                          : "with content-type " + std::string(type->value)) +
         ", not gRPC");
    return;
  }
  encoding_ = messageEncodingOf(fieldValueOf(parsed_head_.headers, "grpc-encoding"));
  framing_ = parsed_head_.framing;
  remaining_ = parsed_head_.content_length;
  phase_ = Phase::Body;
  onHead(parsed_head_);
}

void GrpcCall::readBody(std::string_view data) {
  if (framing_ == http::BodyFraming::Chunked) {
    const auto r = chunked_.feed(data.data(), data.size(), &decoded_, &trailers_);
    if (r.error) {
      fail("the upstream's body is malformed");
      return;
    }
    readFrames();
    if (phase_ == Phase::Done) return;
    if (r.done) finishWith(trailers_, false);
    return;
  }
  const size_t take = framing_ == http::BodyFraming::Length
                          ? static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()))
                          : data.size();
  decoded_.append(data.substr(0, take));
  remaining_ -= framing_ == http::BodyFraming::Length ? take : 0;
  readFrames();
  if (phase_ == Phase::Done) return;
  // A length-delimited answer carries its status in the head (trailers-only, or a server that
  // is not gRPC): it ends with its body.
  if (framing_ != http::BodyFraming::Chunked && framing_ != http::BodyFraming::UntilClose &&
      remaining_ == 0) {
    std::string head_fields;
    for (const auto& h : parsed_head_.headers) {
      head_fields.append(h.name).append(": ").append(h.value).append("\r\n");
    }
    finishWith(head_fields, true);
  }
}

void GrpcCall::readFrames() {
  frames_.append(decoded_);
  decoded_.clear();
  uint8_t flags = 0;
  std::string_view payload;
  for (;;) {
    switch (frames_.next(flags, payload)) {
      case FrameReader::Result::NeedMore:
        return;
      case FrameReader::Result::TooLarge:
        fail("the upstream's message is too large");
        return;
      case FrameReader::Result::Frame:
        break;
    }
    if ((flags & ~kCompressedFlag) != 0) {
      // gRPC defines one flag. Relayed to a gRPC-Web client, a 0x80 would pass for trailers.
      fail("the upstream sent a message frame with undefined flags");
      return;
    }
    if ((flags & kCompressedFlag) != 0 && !keepsCompressed()) {
      if (!decompressMessage(encoding_, payload, max_message_, inflated_)) {
        fail(encoding_ == MessageEncoding::Identity || encoding_ == MessageEncoding::Unknown
                 ? "the upstream sent a compressed message in an unknown grpc-encoding"
                 : "the upstream's compressed message does not inflate within the size limit");
        return;
      }
      payload = inflated_;
      flags = 0;
    }
    onMessage(payload, flags);
    if (phase_ == Phase::Done) return;
  }
}

void GrpcCall::finishWith(std::string_view fields, bool in_head) {
  if (!frames_.atBoundary()) {
    fail("the upstream's stream ended inside a message");
    return;
  }
  const std::string_view status = fieldValue(fields, "grpc-status");
  if (status.empty()) {
    fail("the upstream's answer has no grpc-status");
    return;
  }
  phase_ = Phase::Done;
  onStatus(parseGrpcStatus(status), fieldValue(fields, "grpc-message"), fields, in_head);
}

void GrpcCall::fail(std::string_view why) {
  if (phase_ == Phase::Done) return;
  phase_ = Phase::Done;
  onBroken(why);
}

}  // namespace portico::transcode
