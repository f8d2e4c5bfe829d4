#include "auth/jwt/base64url.hpp"

#include <array>
#include <cstdint>

namespace portico::auth::jwt {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr uint8_t kInvalid = 0xFF;
constexpr uint8_t kInvalidBits = 0xC0;  // set only in kInvalid: valid digits are < 64

constexpr std::array<uint8_t, 256> makeDecodeTable() {
  std::array<uint8_t, 256> table{};
  for (auto& v : table) v = kInvalid;
  for (uint8_t i = 0; i < 64; ++i) table[static_cast<uint8_t>(kAlphabet[i])] = i;
  return table;
}

constexpr std::array<uint8_t, 256> kDecode = makeDecodeTable();

}  // namespace

bool base64UrlDecode(std::string_view in, std::string& out) {
  const size_t tail = in.size() % 4;
  if (tail == 1) return false;
  out.resize(base64UrlDecodedSize(in.size()));
  size_t o = 0;
  size_t i = 0;
  for (; i + 4 <= in.size(); i += 4) {
    const uint8_t a = kDecode[static_cast<uint8_t>(in[i])];
    const uint8_t b = kDecode[static_cast<uint8_t>(in[i + 1])];
    const uint8_t c = kDecode[static_cast<uint8_t>(in[i + 2])];
    const uint8_t d = kDecode[static_cast<uint8_t>(in[i + 3])];
    // '=' is not in the table, so padding is refused along with every other stray character.
    if ((a | b | c | d) & kInvalidBits) return false;
    const uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6) | d;
    out[o++] = static_cast<char>(v >> 16);
    out[o++] = static_cast<char>(v >> 8);
    out[o++] = static_cast<char>(v);
  }
  if (tail == 0) return true;
  const uint8_t a = kDecode[static_cast<uint8_t>(in[i])];
  const uint8_t b = kDecode[static_cast<uint8_t>(in[i + 1])];
  const uint8_t c = tail == 3 ? kDecode[static_cast<uint8_t>(in[i + 2])] : 0;
  if ((a | b | c) & kInvalidBits) return false;
  if (tail == 2) {
    if (b & 0x0F) return false;  // the low 4 bits of the second character encode nothing
    out[o++] = static_cast<char>((a << 2) | (b >> 4));
  } else {
    if (c & 0x03) return false;  // the low 2 bits of the third character encode nothing
    out[o++] = static_cast<char>((a << 2) | (b >> 4));
    out[o++] = static_cast<char>(((b & 0x0F) << 4) | (c >> 2));
  }
  return true;
}

std::optional<std::string> base64UrlDecode(std::string_view in) {
  std::string out;
  if (!base64UrlDecode(in, out)) return std::nullopt;
  return out;
}

std::string base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(bytes[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest == 0) return out;
  uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
  if (rest == 2) v |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
  out.push_back(kAlphabet[(v >> 18) & 63]);
  out.push_back(kAlphabet[(v >> 12) & 63]);
  if (rest == 2) out.push_back(kAlphabet[(v >> 6) & 63]);
  return out;
}

}  // namespace portico::auth::jwt
