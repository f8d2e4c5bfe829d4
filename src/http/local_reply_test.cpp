#include "http/local_reply.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portico::http {
namespace {

std::string render(const LocalReply& reply) {
  Buffer out(1024);
  writeLocalReply(reply, out);
  return std::string(out.view());
}

TEST(LocalReply, JsonErrorCarriesFilterHeadersAfterExtraOnes) {
  LocalReply reply{ErrorCode::RateLimited, "slow down", "abc", {}, {}, "Retry-After: 3\r\n"};
  reply.filter_headers = "Access-Control-Allow-Origin: https://a.example\r\n";
  std::string text = render(reply);
  EXPECT_TRUE(text.starts_with("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json"));
  EXPECT_NE(text.find("\r\nRetry-After: 3\r\nAccess-Control-Allow-Origin: https://a.example\r\n\r\n"
                      "{\"error\":{\"status\":429,\"code\":\"rate_limited\""),
            std::string::npos)
      << text;
}

TEST(LocalReply, GrpcRequestsGetATrailersOnlyAnswer) {
  LocalReply reply{ErrorCode::Unauthenticated, "no key: 100%", "abc", {}, "Bearer", {}};
  reply.grpc = true;
  std::string text = render(reply);
  EXPECT_TRUE(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\n")) << text;
  EXPECT_NE(text.find("\r\nGrpc-Status: 16\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\r\nGrpc-Message: no key: 100%25\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\r\nContent-Length: 0\r\n"), std::string::npos) << text;
  EXPECT_TRUE(text.ends_with("\r\n\r\n")) << text;  // no body
  EXPECT_EQ(text.find("{"), std::string::npos) << text;
}

TEST(LocalReply, GrpcStatusMappingOfSpec) {
  EXPECT_EQ(grpcStatusOf(401), 16);
  EXPECT_EQ(grpcStatusOf(403), 7);
  EXPECT_EQ(grpcStatusOf(429), 8);
  EXPECT_EQ(grpcStatusOf(404), 12);
  EXPECT_EQ(grpcStatusOf(405), 12);
  EXPECT_EQ(grpcStatusOf(502), 14);
  EXPECT_EQ(grpcStatusOf(503), 14);
  EXPECT_EQ(grpcStatusOf(504), 4);
  EXPECT_EQ(grpcStatusOf(413), 8);
  EXPECT_EQ(grpcStatusOf(418), 2);
}

TEST(LocalReply, GrpcContentTypes) {
  EXPECT_TRUE(isGrpcContentType("application/grpc"));
  EXPECT_TRUE(isGrpcContentType("application/grpc+proto"));
  EXPECT_TRUE(isGrpcContentType("Application/GRPC;charset=x"));
  EXPECT_TRUE(isGrpcContentType("application/grpc-web-text"));
  EXPECT_FALSE(isGrpcContentType("application/grpcx"));
  EXPECT_FALSE(isGrpcContentType("application/json"));
  EXPECT_FALSE(isGrpcContentType(""));
}

TEST(LocalReply, GrpcTimeoutValues) {
  EXPECT_EQ(parseGrpcTimeoutMs("300m"), 300u);
  EXPECT_EQ(parseGrpcTimeoutMs("2S"), 2000u);
  EXPECT_EQ(parseGrpcTimeoutMs("1M"), 60000u);
  EXPECT_EQ(parseGrpcTimeoutMs("1H"), 3600000u);
  EXPECT_EQ(parseGrpcTimeoutMs("1500u"), 2u);
  EXPECT_EQ(parseGrpcTimeoutMs("1n"), 1u);
  EXPECT_EQ(parseGrpcTimeoutMs("99999999S"), 99999999000u);
  EXPECT_FALSE(parseGrpcTimeoutMs("100"));
  EXPECT_FALSE(parseGrpcTimeoutMs("m"));
  EXPECT_FALSE(parseGrpcTimeoutMs("123456789S"));  // over 8 digits
  EXPECT_FALSE(parseGrpcTimeoutMs("1x"));
  EXPECT_FALSE(parseGrpcTimeoutMs("-1S"));
}

TEST(LocalReply, GrpcMessageIsPercentEncodedOutsidePrintableAscii) {
  Buffer out(64);
  appendGrpcMessage("a b%\n\xc3\xa9", out);
  EXPECT_EQ(out.view(), "a b%25%0A%C3%A9");
}

TEST(LocalReply, EmptyReplyHasNoBodyAndNoLengthFor204) {
  Buffer out(256);
  writeEmptyReply({204, "id1", "Vary: Origin\r\n", false, true}, out);
  EXPECT_EQ(out.view(),
            "HTTP/1.1 204 No Content\r\nX-Request-Id: id1\r\nConnection: keep-alive\r\n"
            "Vary: Origin\r\n\r\n");
  Buffer other(256);
  writeEmptyReply({200, {}, {}, true, false}, other);
  EXPECT_EQ(other.view(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

// The word-at-a-time escape against the plain byte loop: every byte value at every position of
// a word and of the tail after it.
std::string escapedByteByByte(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

TEST(JsonEscape, EveryByteAtEveryPositionMatchesTheByteLoop) {
  for (size_t length : {1u, 7u, 8u, 9u, 13u, 16u, 21u}) {
    for (size_t at = 0; at < length; ++at) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string input(length, 'a');
        input[at] = static_cast<char>(byte);
        Buffer out;
        appendJsonEscaped(input, out);
        ASSERT_EQ(out.view(), escapedByteByByte(input)) << "length " << length << " at " << at
                                                        << " byte " << byte;
      }
    }
  }
  Buffer out;
  appendJsonEscaped("/path/\"quoted\"\\back\tslash\x01 and more text", out);
  EXPECT_EQ(out.view(), "/path/\\\"quoted\\\"\\\\back\\u0009slash\\u0001 and more text");
}

}  // namespace
}  // namespace portico::http
