// The chunked decoder: framing, extensions (RFC 9112 §7.1.1), trailers, and what a proxy needs
// from it (bytes to pass on, trailer bytes to drop, the size a line announces).
#include "http/chunked.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portico::http {
namespace {

TEST(ChunkedDecoder, DecodesAcrossArbitrarySplits) {
  const std::string body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
  for (size_t split = 1; split < body.size(); ++split) {
    ChunkedDecoder d;
    std::string out;
    auto a = d.feed(body.data(), split, &out);
    ASSERT_FALSE(a.error) << split;
    auto b = d.feed(body.data() + a.consumed, body.size() - a.consumed, &out);
    ASSERT_FALSE(b.error) << split;
    EXPECT_TRUE(b.done) << split;
    EXPECT_EQ(a.consumed + b.consumed, body.size());
    EXPECT_EQ(out, "hello world");
    EXPECT_EQ(d.dataBytes(), 11u);
  }
}

TEST(ChunkedDecoder, StopsAtEndOfBody) {
  const std::string wire = "1\r\na\r\n0\r\n\r\nGET /next";
  ChunkedDecoder d;
  auto r = d.feed(wire.data(), wire.size());
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, wire.size() - 9);
}

TEST(ChunkedDecoder, RefusesMalformedFraming) {
  for (const std::string bad : {"zz\r\n", " 5\r\n", "5 \r\n", "ffffffffffffffffff\r\n",
                                "5\nhello\r\n", "5\r\nhelloX\r\n", "0\r\n folded\r\n\r\n",
                                "\r\n", "5;\x01\r\n", "0\r\nX: a\nY"}) {
    ChunkedDecoder d;
    auto r = d.feed(bad.data(), bad.size());
    EXPECT_TRUE(r.error) << bad;
  }
}

TEST(ChunkedDecoder, AcceptsExtensionsOfTheGrammar) {
  for (const std::string good :
       {"5;a\r\nhello\r\n0\r\n\r\n", "5;a=b\r\nhello\r\n0\r\n\r\n",
"5; a = \"q\\\"x;y\" ;b\r\nhello\r\n0;last\r\n\r\n"}) {
    ChunkedDecoder d;
    auto r = d.feed(good.data(), good.size());
    EXPECT_FALSE(r.error) << good;
    EXPECT_TRUE(r.done) << good;
  }
}

TEST(ChunkedDecoder, RefusesExtensionsOutsideTheGrammar) {
  // An extension without a name (a smuggling probe), a dangling '=', a bad value, an unclosed
  // quote, a separator where a token belongs.
  for (const std::string bad : {"5;\r\nhello\r\n", "5;=x\r\n", "5;a=\r\n", "5;a=b c\r\n",
                                "5;a=\"x\r\n", "5;a;\r\n", "5;a=(x)\r\n", "5;a@b\r\n"}) {
    ChunkedDecoder d;
    auto r = d.feed(bad.data(), bad.size());
    EXPECT_TRUE(r.error) << bad;
  }
}

TEST(ChunkedDecoder, RefusesTrailersOutsideTheFieldGrammar) {
  for (const std::string bad : {"0\r\nno colon\r\n\r\n", "0\r\n: x\r\n\r\n",
                                "0\r\nX Y: z\r\n\r\n", "0\r\nX:\x01\r\n\r\n"}) {
    ChunkedDecoder d;
    auto r = d.feed(bad.data(), bad.size());
    EXPECT_TRUE(r.error) << bad;
  }
}

TEST(ChunkedDecoder, CountsTrailerFieldBytesAcrossSplits) {
  const std::string body = "1\r\na\r\n0\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n";
  const size_t fields = std::string("X-A: 1\r\nContent-Length: 5\r\n").size();
  for (size_t split = 1; split < body.size(); ++split) {
    ChunkedDecoder d;
    auto a = d.feed(body.data(), split);
    auto b = d.feed(body.data() + a.consumed, body.size() - a.consumed);
    ASSERT_FALSE(a.error || b.error) << split;
    EXPECT_TRUE(b.done);
    EXPECT_EQ(a.trailer_bytes + b.trailer_bytes, fields) << split;
  }
}

TEST(ChunkedDecoder, GivesTrailerFieldLinesAcrossSplits) {
  const std::string body = "1\r\na\r\n0\r\ngrpc-status: 0\r\nX-B: \r\n\r\n";
  for (size_t split = 1; split < body.size(); ++split) {
    ChunkedDecoder d;
    std::string data, trailers;
    auto a = d.feed(body.data(), split, &data, &trailers);
    auto b = d.feed(body.data() + a.consumed, body.size() - a.consumed, &data, &trailers);
    ASSERT_FALSE(a.error || b.error) << split;
    EXPECT_TRUE(b.done);
    EXPECT_EQ(data, "a");
    EXPECT_EQ(trailers, "grpc-status: 0\r\nX-B: \r\n") << split;
  }
}

TEST(ChunkedDecoder, AnnouncedBytesIncludeTheChunkInProgress) {
  const std::string wire = "4\r\nabcd\r\n100000010\r\nAAAA";
  ChunkedDecoder d;
  auto r = d.feed(wire.data(), wire.size());
  EXPECT_FALSE(r.error);
  EXPECT_EQ(d.dataBytes(), 8u);
  EXPECT_EQ(d.announcedBytes(), 4u + 0x100000010u);
}

}  // namespace
}  // namespace portico::http
