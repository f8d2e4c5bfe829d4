#include <gtest/gtest.h>

#include "proxy/session.hpp"

namespace portico::proxy {
namespace {

TEST(Http2Preface, RecognizesThePrefaceAsItArrives) {
  constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  EXPECT_EQ(matchHttp2Preface(kPreface), PrefaceMatch::Complete);
  EXPECT_EQ(matchHttp2Preface(std::string(kPreface) + "\x00\x00\x12\x04"), PrefaceMatch::Complete);
  EXPECT_EQ(matchHttp2Preface("PRI * HTTP/2"), PrefaceMatch::Partial);
  EXPECT_EQ(matchHttp2Preface("P"), PrefaceMatch::Partial);
  EXPECT_EQ(matchHttp2Preface("POST / HTTP/1.1\r\n"), PrefaceMatch::No);
  EXPECT_EQ(matchHttp2Preface("PRI * HTTP/1.1\r\n\r\n"), PrefaceMatch::No);
}

}  // namespace
}  // namespace portico::proxy
