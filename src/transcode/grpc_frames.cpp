#include "transcode/grpc_frames.hpp"

#include <array>

namespace portico::transcode {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> makeDecodeTable() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr auto kDecode = makeDecodeTable();

}  // namespace

void appendFrame(std::string& out, uint8_t flags, std::string_view payload) {
  const auto size = static_cast<uint32_t>(payload.size());
  const char header[kFrameHeader] = {static_cast<char>(flags), static_cast<char>(size >> 24),
                                     static_cast<char>(size >> 16), static_cast<char>(size >> 8),
                                     static_cast<char>(size)};
  out.append(header, kFrameHeader);
  out.append(payload);
}

FrameReader::Result FrameReader::next(uint8_t& flags, std::string_view& payload) {
  if (pos_ > 0 && pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  }
  const size_t available = buffer_.size() - pos_;
  if (available < kFrameHeader) return Result::NeedMore;
  const auto* p = reinterpret_cast<const uint8_t*>(buffer_.data() + pos_);
  const size_t size = (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | p[4];
  if (size > max_message_) return Result::TooLarge;
  if (available - kFrameHeader < size) {
    // Keep the partial frame at the front, so the buffer holds at most about one message.
    if (pos_ > 0) {
      buffer_.erase(0, pos_);
      pos_ = 0;
    }
    return Result::NeedMore;
  }
  flags = p[0];
  payload = std::string_view(buffer_).substr(pos_ + kFrameHeader, size);
  pos_ += kFrameHeader + size;
  return Result::Frame;
}

void appendBase64(std::string_view bytes, std::string& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size();
  out.reserve(out.size() + (n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < n) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
}

bool Base64StreamDecoder::feed(std::string_view text, std::string& out) {
  for (char c : text) {
    group_[held_++] = c;
    if (held_ < 4) continue;
    held_ = 0;
    int v[4];
    size_t data_chars = 4;
    if (group_[3] == '=') data_chars = group_[2] == '=' ? 2 : 3;
    for (size_t k = 0; k < 4; ++k) {
      v[k] = k < data_chars ? kDecode[static_cast<uint8_t>(group_[k])] : 0;
      if (v[k] < 0) return false;
    }
    if (data_chars == 2 && group_[2] != '=') return false;
    const uint32_t bits =
        (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    out.push_back(static_cast<char>(bits >> 16));
    if (data_chars > 2) out.push_back(static_cast<char>(bits >> 8));
    if (data_chars > 3) out.push_back(static_cast<char>(bits));
  }
  return true;
}

}  // namespace portico::transcode
