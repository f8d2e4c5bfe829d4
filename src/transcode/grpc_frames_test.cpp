#include "transcode/grpc_frames.hpp"

#include <gtest/gtest.h>

#include "transcode/grpc_status.hpp"

namespace portico::transcode {
namespace {

TEST(FrameReader, CutsFramesAcrossPiecesAndRefusesOversizedOnes) {
  std::string stream;
  appendFrame(stream, 0, "hello");
  appendFrame(stream, 0, "");
  appendFrame(stream, kTrailerFlag, "grpc-status: 0\r\n");
  FrameReader reader(64);
  std::vector<std::pair<uint8_t, std::string>> frames;
  for (char c : stream) {  // one byte at a time
    reader.append(std::string_view(&c, 1));
    uint8_t flags = 0;
    std::string_view payload;
    while (reader.next(flags, payload) == FrameReader::Result::Frame) {
      frames.emplace_back(flags, std::string(payload));
    }
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], std::make_pair(uint8_t{0}, std::string("hello")));
  EXPECT_EQ(frames[1], std::make_pair(uint8_t{0}, std::string()));
  EXPECT_EQ(frames[2].first, kTrailerFlag);
  EXPECT_TRUE(reader.atBoundary());

  FrameReader small(4);
  std::string big;
  appendFrame(big, 0, "12345");
  small.append(big.substr(0, 5));
  uint8_t flags = 0;
  std::string_view payload;
  EXPECT_EQ(small.next(flags, payload), FrameReader::Result::TooLarge);
}

TEST(Base64, EncodesPaddedAndDecodesPiecesEachPaddedOnTheirOwn) {
  std::string out;
  appendBase64("", out);
  appendBase64("f", out);
  appendBase64("fo", out);
  appendBase64("foo", out);
  EXPECT_EQ(out, "Zg==Zm8=Zm9v");
  Base64StreamDecoder decoder;
  std::string decoded;
  ASSERT_TRUE(decoder.feed("Zg==Zm", decoded));
  EXPECT_FALSE(decoder.complete());
  ASSERT_TRUE(decoder.feed("8=Zm9v", decoded));
  EXPECT_TRUE(decoder.complete());
  EXPECT_EQ(decoded, "ffofoo");
  Base64StreamDecoder bad;
  EXPECT_FALSE(bad.feed("Zm9*", decoded));
  Base64StreamDecoder misplaced;
  EXPECT_FALSE(misplaced.feed("Z=9v", decoded));
}

TEST(GrpcStatus, MapsToHttpByGoogleRpcAndDecodesMessages) {
  EXPECT_EQ(httpStatusOfGrpc(0), 200);
  EXPECT_EQ(httpStatusOfGrpc(3), 400);
  EXPECT_EQ(httpStatusOfGrpc(4), 504);
  EXPECT_EQ(httpStatusOfGrpc(5), 404);
  EXPECT_EQ(httpStatusOfGrpc(7), 403);
  EXPECT_EQ(httpStatusOfGrpc(8), 429);
  EXPECT_EQ(httpStatusOfGrpc(14), 503);
  EXPECT_EQ(httpStatusOfGrpc(16), 401);
  EXPECT_EQ(httpStatusOfGrpc(1), 499);
  EXPECT_EQ(httpStatusOfGrpc(12), 501);
  EXPECT_EQ(httpStatusOfGrpc(99), 500);
  EXPECT_EQ(grpcStatusName(9), "failed_precondition");
  EXPECT_EQ(parseGrpcStatus("14"), 14);
  EXPECT_EQ(parseGrpcStatus("x"), kGrpcUnknown);
  EXPECT_EQ(parseGrpcStatus("123"), kGrpcUnknown);
  EXPECT_EQ(decodeGrpcMessage("no%20book%C3%A9 100%"), "no book\xc3\xa9 100%");
  EXPECT_EQ(decodeGrpcMessage("%zz%4"), "%zz%4");
}

}  // namespace
}  // namespace portico::transcode
