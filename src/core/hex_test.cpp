#include "core/hex.hpp"

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <random>

namespace portico {
namespace {

std::string reference(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016" PRIx64, value);
  return text;
}

TEST(Hex, SixteenDigitsLikePrintf) {
  std::mt19937_64 random(7);
  std::vector<uint64_t> values = {0, 1, 9, 10, 15, 16, 0xabcdef, UINT64_MAX, 0x0123456789abcdefu,
                                  0xfedcba9876543210u, 0x9999999999999999u, 0xaaaaaaaaaaaaaaaau};
  for (int i = 0; i < 10000; ++i) values.push_back(random());
  for (uint64_t value : values) {
    char out[16];
    writeHex16(value, out);
    EXPECT_EQ(std::string(out, 16), reference(value)) << value;
  }
}

}  // namespace
}  // namespace portico
