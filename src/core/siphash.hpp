#pragma once
// SipHash (Aumasson and Bernstein), a keyed hash for tables whose keys come from clients: with a
// secret key nobody can choose keys that collide, as one can for an unkeyed hash (review M6).

#include <cstdint>
#include <cstring>
#include <string_view>

namespace portico {

struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
};

template <int CompressionRounds, int FinalRounds>
uint64_t sipHash(const SipKey& key, std::string_view data) {
  uint64_t v0 = key.k0 ^ 0x736f6d6570736575ULL;
  uint64_t v1 = key.k1 ^ 0x646f72616e646f6dULL;
  uint64_t v2 = key.k0 ^ 0x6c7967656e657261ULL;
  uint64_t v3 = key.k1 ^ 0x7465646279746573ULL;
  auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  auto round = [&] {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  };
  auto absorb = [&](uint64_t m) {
    v3 ^= m;
    for (int i = 0; i < CompressionRounds; ++i) round();
    v0 ^= m;
  };
  const size_t whole = data.size() / 8 * 8;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = 0;
    for (int b = 0; b < 8; ++b)
      m |= static_cast<uint64_t>(static_cast<uint8_t>(data[i + b])) << (8 * b);
    absorb(m);
  }
  uint64_t last = static_cast<uint64_t>(data.size()) << 56;
  for (size_t i = whole; i < data.size(); ++i) {
    last |= static_cast<uint64_t>(static_cast<uint8_t>(data[i])) << (8 * (i - whole));
  }
  absorb(last);
  v2 ^= 0xff;
  for (int i = 0; i < FinalRounds; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// A key drawn once per process from the system's random source.
const SipKey& processSipKey();

}  // namespace portico
