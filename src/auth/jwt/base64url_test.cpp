#include "auth/jwt/base64url.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portico::auth::jwt {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// RFC 4648 §10, with the padding removed as RFC 7515 §2 does.
TEST(JwtBase64Url, Rfc4648VectorsWithoutPadding) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},          {"f", "Zg"},         {"fo", "Zm8"},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64UrlEncode(plain), encoded);
    EXPECT_EQ(base64UrlDecode(encoded), std::optional<std::string>(plain)) << encoded;
  }
}

// RFC 7515 Appendix C: the example octets [3, 236, 255, 224, 193] encode as "A-z_4ME".
TEST(JwtBase64Url, Rfc7515AppendixCUsesTheUrlAlphabet) {
  const std::string octets = bytes({3, 236, 255, 224, 193});
  EXPECT_EQ(base64UrlEncode(octets), "A-z_4ME");
  EXPECT_EQ(base64UrlDecode("A-z_4ME"), std::optional<std::string>(octets));
  EXPECT_EQ(base64UrlEncode(bytes({0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff})), "----____");
}

TEST(JwtBase64Url, RoundTripsEveryByteAtEveryLength) {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>((i * 167 + 13) & 0xFF));
  for (size_t len = 0; len <= data.size(); ++len) {
    const std::string slice = data.substr(0, len);
    const std::string encoded = base64UrlEncode(slice);
    EXPECT_EQ(encoded.size(), (len * 4 + 2) / 3);
    EXPECT_EQ(encoded.find_first_of("=+/"), std::string::npos);
    EXPECT_EQ(base64UrlDecodedSize(encoded.size()), len);
    ASSERT_EQ(base64UrlDecode(encoded), std::optional<std::string>(slice)) << len;
  }
}

TEST(JwtBase64Url, RejectsPadding) {
  EXPECT_FALSE(base64UrlDecode("Zg=="));
  EXPECT_FALSE(base64UrlDecode("Zm8="));
  EXPECT_FALSE(base64UrlDecode("Zm9v===="));
  EXPECT_FALSE(base64UrlDecode("="));
}

TEST(JwtBase64Url, RejectsCharactersOutsideTheUrlAlphabet) {
  for (const char* text : {"Zm+v", "Zm/v", "Zm9 v", "Zm9v\n", "Zm.v", "Z\x80v", "Zm*v"}) {
    EXPECT_FALSE(base64UrlDecode(text)) << text;
  }
  EXPECT_FALSE(base64UrlDecode(std::string_view("Zm\0v", 4)));
}

TEST(JwtBase64Url, RejectsImpossibleLengths) {
  EXPECT_FALSE(base64UrlDecode("Z"));
  EXPECT_FALSE(base64UrlDecode("Zm9vY"));
  EXPECT_FALSE(base64UrlDecode("Zm9vYmFyZ"));
}

// RFC 4648 §3.5: "Zh" would also decode to "f" if the unused bits were ignored, making the
// encoding malleable.
TEST(JwtBase64Url, RejectsNonCanonicalTrailingBits) {
  EXPECT_FALSE(base64UrlDecode("Zh"));
  EXPECT_FALSE(base64UrlDecode("Zm9"));
  EXPECT_TRUE(base64UrlDecode("Zg"));
  EXPECT_TRUE(base64UrlDecode("Zm8"));
}

TEST(JwtBase64Url, DecodeReplacesTheOutputBuffer) {
  std::string out = "previous contents that are longer";
  ASSERT_TRUE(base64UrlDecode("Zm9v", out));
  EXPECT_EQ(out, "foo");
  ASSERT_TRUE(base64UrlDecode("", out));
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace portico::auth::jwt
