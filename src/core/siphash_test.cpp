#include "core/siphash.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portico {
namespace {

SipKey referenceKey() {  // bytes 00 01 .. 0f, little-endian
  return {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
}

uint64_t sip24(std::string_view data) { return sipHash<2, 4>(referenceKey(), data); }
uint64_t sip13(const SipKey& key, std::string_view data) { return sipHash<1, 3>(key, data); }

TEST(SipHash, MatchesTheReferenceVectors) {
  // The first vectors of the SipHash-2-4 paper's reference implementation: messages 00, 00 01,
  // ..., hashed with the key 00 01 .. 0f.
  EXPECT_EQ(sip24(""), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(sip24(std::string("\x00", 1)), 0x74f839c593dc67fdULL);
  std::string fifteen;
  for (int i = 0; i < 15; ++i) fifteen.push_back(static_cast<char>(i));
  EXPECT_EQ(sip24(fifteen), 0xa129ca6149be45e5ULL);
}

TEST(SipHash, DependsOnTheKey) {
  SipKey other = referenceKey();
  other.k1 ^= 1;
  EXPECT_NE(sip13(referenceKey(), "tenant-a"), sip13(other, "tenant-a"));
  EXPECT_EQ(&processSipKey(), &processSipKey());
}

}  // namespace
}  // namespace portico
