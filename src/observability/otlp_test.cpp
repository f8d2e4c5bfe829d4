// The hand-written OTLP encoding, read back by a minimal protobuf wire-format reader.
#include "observability/otlp.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace portico::observability {
namespace {

// field number -> its values (bytes of length-delimited fields, or the number as text).
using Message = std::multimap<uint32_t, std::string>;

Message readMessage(std::string_view in) {
  Message out;
  size_t i = 0;
  auto varint = [&]() {
    uint64_t value = 0;
    for (int shift = 0; i < in.size(); shift += 7) {
      uint8_t b = static_cast<uint8_t>(in[i++]);
      value |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) break;
    }
    return value;
  };
  while (i < in.size()) {
    uint64_t tag = varint();
    uint32_t field = static_cast<uint32_t>(tag >> 3);
    switch (tag & 7) {
      case 0: out.emplace(field, std::to_string(varint())); break;
      case 1: {
        uint64_t v = 0;
        for (int b = 0; b < 8; ++b) v |= static_cast<uint64_t>(static_cast<uint8_t>(in[i + b])) << (8 * b);
        i += 8;
        out.emplace(field, std::to_string(v));
        break;
      }
      case 2: {
        size_t n = varint();
        out.emplace(field, std::string(in.substr(i, n)));
        i += n;
        break;
      }
      default: ADD_FAILURE() << "unexpected wire type"; return out;
    }
  }
  return out;
}

std::string only(const Message& m, uint32_t field) {
  EXPECT_EQ(m.count(field), 1u) << "field " << field;
  auto it = m.find(field);
  return it == m.end() ? "" : it->second;
}

TEST(Otlp, ASpanInsideAnExportRequest) {
  SpanAttribute attributes[] = {{"http.request.method", "GET"},
                                {"http.response.status_code", {}, 503, true}};
  SpanData span;
  span.trace_id_hex = "0af7651916cd43dd8448eb211c80319c";
  span.span_id_hex = "b7ad6b7169203331";
  span.parent_id_hex = "00f067aa0ba902b7";
  span.name = "GET users";
  span.start_unix_ns = 1'700'000'000'000'000'000u;
  span.end_unix_ns = 1'700'000'000'001'000'000u;
  span.attributes = attributes;
  span.error = true;
  std::string spans;
  appendSpan(spans, span);
  appendSpan(spans, span);
  const Message request = readMessage(exportRequest("edge", spans));
  const Message resource_spans = readMessage(only(request, 1));
  const Message resource = readMessage(only(resource_spans, 1));
  const Message service = readMessage(only(resource, 1));
  EXPECT_EQ(only(service, 1), "service.name");
  EXPECT_EQ(only(readMessage(only(service, 2)), 1), "edge");
  const Message scope_spans = readMessage(only(resource_spans, 2));
  ASSERT_EQ(scope_spans.count(2), 2u);
  const Message s = readMessage(scope_spans.find(2)->second);
  EXPECT_EQ(only(s, 1), std::string("\x0a\xf7\x65\x19\x16\xcd\x43\xdd\x84\x48\xeb\x21\x1c\x80\x31\x9c", 16));
  EXPECT_EQ(only(s, 2), std::string("\xb7\xad\x6b\x71\x69\x20\x33\x31", 8));
  EXPECT_EQ(only(s, 4), std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8));
  EXPECT_EQ(only(s, 5), "GET users");
  EXPECT_EQ(only(s, 6), "2");  // SERVER
  EXPECT_EQ(only(s, 7), "1700000000000000000");
  EXPECT_EQ(only(s, 8), "1700000000001000000");
  ASSERT_EQ(s.count(9), 2u);
  auto attribute = s.find(9);
  const Message method = readMessage(attribute->second);
  EXPECT_EQ(only(method, 1), "http.request.method");
  EXPECT_EQ(only(readMessage(only(method, 2)), 1), "GET");
  const Message status = readMessage((++attribute)->second);
  EXPECT_EQ(only(status, 1), "http.response.status_code");
  EXPECT_EQ(only(readMessage(only(status, 2)), 3), "503");
  EXPECT_EQ(only(readMessage(only(s, 15)), 3), "2");  // STATUS_CODE_ERROR
}

TEST(Otlp, ARootSpanHasNoParentAndAnOkSpanNoStatus) {
  SpanData span;
  span.trace_id_hex = "0af7651916cd43dd8448eb211c80319c";
  span.span_id_hex = "b7ad6b7169203331";
  span.name = "GET";
  std::string spans;
  appendSpan(spans, span);
  const Message s = readMessage(readMessage(spans).find(2)->second);
  EXPECT_EQ(s.count(4), 0u);
  EXPECT_EQ(s.count(15), 0u);
}

TEST(SpanExporter, WithoutAnEndpointSpansAreDroppedAndCounted) {
  SpanExporter exporter;
  exporter.submit("x", 3);
  EXPECT_EQ(exporter.dropped(), 3u);
  SpanExporter::Settings settings;
  settings.endpoint = "http://127.0.0.1:1/v1/traces";  // nothing listens on port 1
  settings.queue_size = 4;
  settings.interval_ms = 10;
  exporter.configure(settings);
  exporter.submit("x", 5);  // over the queue's bound
  EXPECT_EQ(exporter.dropped(), 8u);
  exporter.submit("x", 2);
  for (int i = 0; i < 500 && exporter.failed() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(exporter.failed(), 2u);
  EXPECT_EQ(exporter.exported(), 0u);
}

}  // namespace
}  // namespace portico::observability
