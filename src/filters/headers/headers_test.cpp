#include "filters/headers/headers.hpp"

#include <gtest/gtest.h>

#include "filters/filter_testing.hpp"

namespace portico::filters {
namespace {

class RecordingEnvironment final : public FilterCallbacks, public testing::UnusedEnvironment {
 public:
  void reply(const Reply&) override { ADD_FAILURE() << "the headers filter never answers"; }
  void resume() override {}
  StreamEnvironment* environment() override { return this; }
  void editUpstreamRequest(const http::FieldEdits& e) override { edits = &e; }
  const http::FieldEdits* edits = nullptr;
};

HeadersFactory factory() {
  HeaderEdits request{{{"X-Gateway", "portico"}, {"Host", "inner.example"}}, {"cookie"}};
  HeaderEdits response{{{"Strict-Transport-Security", "max-age=60"}}, {"server"}};
  return HeadersFactory(request, response);
}

TEST(HeadersFilter, RequestEditsDropWhatIsRemovedOrSetAndAddTheSetLines) {
  HeadersFactory f = factory();
  const http::FieldEdits& r = f.request();
  EXPECT_EQ(r.drop, (std::vector<std::string>{"cookie", "host", "x-gateway"}));
  EXPECT_EQ(r.add, "X-Gateway: portico\r\nHost: inner.example\r\n");
  EXPECT_TRUE(r.sets_host);
  EXPECT_FALSE(f.response().sets_host);

  Arena arena;
  RecordingEnvironment stream;
  net::SocketAddress client;
  EXPECT_EQ(f.create(arena).onRequestHeaders(stream, RequestInfo{client, "GET", {}}),
            FilterStatus::Continue);
  EXPECT_EQ(stream.edits, &f.request());
}

TEST(HeadersFilter, ResponseEditsApplyToTheUpstreamsAnswerOnly) {
  HeadersFactory f = factory();
  Arena arena;
  Filter& filter = f.create(arena);
  testing::RecordingStream stream;
  std::string fields;
  ResponseInfo upstream{200, fields, true};
  EXPECT_EQ(filter.onResponseHeaders(stream, upstream), FilterStatus::Continue);
  ASSERT_NE(upstream.dropped, nullptr);
  EXPECT_EQ(*upstream.dropped, (std::vector<std::string>{"server", "strict-transport-security"}));
  EXPECT_EQ(fields, "Strict-Transport-Security: max-age=60\r\n");

  std::string own_fields;
  ResponseInfo own{401, own_fields, false};
  EXPECT_EQ(filter.onResponseHeaders(stream, own), FilterStatus::Continue);
  EXPECT_EQ(own.dropped, nullptr);
  EXPECT_EQ(own_fields, "");
}

}  // namespace
}  // namespace portico::filters
