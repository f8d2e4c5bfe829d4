#pragma once
// gRPC's length-prefixed messages (grpc/doc/PROTOCOL-HTTP2.md): a flag byte, a 4-byte big-endian
// length, the message. gRPC-Web adds a trailer frame (flag 0x80) and a base64 text form of the
// same stream (grpc/doc/PROTOCOL-WEB.md).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace portico::transcode {

inline constexpr size_t kFrameHeader = 5;
inline constexpr uint8_t kCompressedFlag = 0x01;
inline constexpr uint8_t kTrailerFlag = 0x80;

void appendFrame(std::string& out, uint8_t flags, std::string_view payload);

// Cuts a byte stream into frames as its bytes come.
class FrameReader {
 public:
  explicit FrameReader(size_t max_message) : max_message_(max_message) {}
  enum class Result : uint8_t { NeedMore, Frame, TooLarge };
  void append(std::string_view data) { buffer_.append(data); }
  // The next whole frame; its payload is valid until the next call of append() or next().
  Result next(uint8_t& flags, std::string_view& payload);
  // No partial frame is waiting.
  bool atBoundary() const { return pos_ == buffer_.size(); }
  void reset() {
    buffer_.clear();
    pos_ = 0;
  }

 private:
  size_t max_message_;
  std::string buffer_;
  size_t pos_ = 0;
};

// Standard base64 with padding (RFC 4648 §4), appended to `out`.
void appendBase64(std::string_view bytes, std::string& out);

// gRPC-Web text bodies: base64 in 4-character groups, where every group may end in padding (a
// sender encodes each piece on its own). Decodes as the characters come.
class Base64StreamDecoder {
 public:
  // False on a character outside the alphabet or misplaced padding.
  bool feed(std::string_view text, std::string& out);
  // The text ended on a group boundary.
  bool complete() const { return held_ == 0; }

 private:
  char group_[4] = {};
  size_t held_ = 0;
};

}  // namespace portico::transcode
