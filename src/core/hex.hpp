#pragma once
// Lower-case hexadecimal digits of a 64-bit value, without a loop or a table: a request id is
// 32 of them on every request.

#include <cstdint>
#include <cstring>

namespace portico {

// Writes the 16 digits of `value`, most significant first, to out[0..15].
inline void writeHex16(uint64_t value, char* out) {
  // Spread each half's nibbles into bytes, the most significant nibble in the top byte.
  auto spread = [](uint64_t x) {
    x = ((x & 0xffff0000u) << 16) | (x & 0xffffu);
    x = ((x & 0x0000ff000000ff00u) << 8) | (x & 0x000000ff000000ffu);
    x = ((x & 0x00f000f000f000f0u) << 4) | (x & 0x000f000f000f000fu);
    return x;
  };
  auto digits = [](uint64_t nibbles) {
    // 1 in each byte whose nibble is 10..15: those go to 'a'..'f', 39 past '0' + the nibble.
    const uint64_t letters = ((nibbles + 0x0606060606060606u) >> 4) & 0x0101010101010101u;
    const uint64_t ascii = nibbles + 0x3030303030303030u + letters * 39;
    return __builtin_bswap64(ascii);  // the top byte goes first in memory
  };
  const uint64_t high = digits(spread(value >> 32));
  const uint64_t low = digits(spread(value & 0xffffffffu));
  std::memcpy(out, &high, 8);
  std::memcpy(out + 8, &low, 8);
}

}  // namespace portico
