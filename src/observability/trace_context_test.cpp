// traceparent by the W3C Trace Context rules, with the test suite's cases where they apply.
#include "observability/trace_context.hpp"

#include <gtest/gtest.h>

#include <string>

namespace portico::observability {
namespace {

constexpr std::string_view kTrace = "0af7651916cd43dd8448eb211c80319c";
constexpr std::string_view kParent = "b7ad6b7169203331";

bool parses(std::string_view value) {
  TraceParent out;
  return parseTraceParent(value, out);
}

TEST(TraceParent, ReadsAValidVersion00) {
  TraceParent out;
  ASSERT_TRUE(parseTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", out));
  EXPECT_EQ(std::string_view(out.trace_id, 32), kTrace);
  EXPECT_EQ(std::string_view(out.parent_id, 16), kParent);
  EXPECT_TRUE(out.sampled());
  ASSERT_TRUE(parseTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", out));
  EXPECT_FALSE(out.sampled());
  ASSERT_TRUE(parseTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09", out));
  EXPECT_TRUE(out.sampled());  // other flag bits do not hide the sampled one
}

TEST(TraceParent, RefusesWhatTheW3CSuiteCallsInvalid) {
  const std::string good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  for (std::string_view bad : {
           "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   // version ff
           "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",    // short version
           "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   // not hex
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",  // 00 with more after
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be-like",
           "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",   // upper-case trace-id
           "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",   // upper-case parent-id
           "00-00000000000000000000000000000000-b7ad6b7169203331-01",   // zero trace-id
           "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",   // zero parent-id
           "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",    // short trace-id
           "00-0af7651916cd43dd8448eb211c80319c0-b7ad6b716920333-01",   // misplaced dash
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",    // short flags
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",   // flags not hex
           "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",   // wrong separators
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033.1-01",
           "",
       }) {
    EXPECT_FALSE(parses(bad)) << bad;
  }
  EXPECT_TRUE(parses(good));
}

TEST(TraceParent, ReadsALaterVersionByItsVersion00Prefix) {
  // Forward compatibility: a version above 00 may carry more fields after a dash.
  EXPECT_TRUE(parses("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
  EXPECT_TRUE(parses("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future"));
  EXPECT_FALSE(parses("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01.what-the-future"));
  EXPECT_FALSE(parses("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0"));
}

TEST(TraceParent, FormatsVersion00) {
  char out[kTraceParentSize];
  formatTraceParent(kTrace.data(), kParent.data(), 1, out);
  EXPECT_EQ(std::string_view(out, sizeof out),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_TRUE(parses({out, sizeof out}));
}

TEST(TraceParent, HexToBytes) {
  uint8_t bytes[8];
  hexToBytes(kParent, bytes);
  EXPECT_EQ(bytes[0], 0xb7);
  EXPECT_EQ(bytes[7], 0x31);
}

}  // namespace
}  // namespace portico::observability
