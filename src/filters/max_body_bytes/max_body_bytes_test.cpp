#include "filters/max_body_bytes/max_body_bytes.hpp"

#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "filters/filter_testing.hpp"

namespace portico::filters {
namespace {

class LimitRecorder final : public FilterCallbacks, public testing::UnusedEnvironment {
 public:
  void reply(const Reply&) override { ADD_FAILURE() << "max_body_bytes never answers itself"; }
  void resume() override {}
  StreamEnvironment* environment() override { return this; }
  void limitRequestBody(uint64_t max_bytes) override { limit = max_bytes; }
  uint64_t limit = 0;
};

TEST(MaxBodyBytes, TheRoutesLimitReplacesTheListenersForItsRequests) {
  config::LoadResult r = config::loadConfigString(
      "listeners: [{address: 127.0.0.1:8080, limits: {max_body_bytes: 10MiB}}]\n"
      "upstreams: {echo: {builtin: echo}}\n"
      "routes: [{name: r, match: {path_prefix: /}, upstream: echo, auth: public,"
      " max_body_bytes: 64KiB}]\n",
      "t.yaml", [](const std::string&) { return std::optional<std::string>(); });
  ASSERT_TRUE(r.config) << r.errors[0].format();
  MaxBodyBytesFactory factory(*r.config->routes[0].max_body_bytes);
  Arena arena;
  LimitRecorder stream;
  net::SocketAddress client;
  EXPECT_EQ(factory.create(arena).onRequestHeaders(stream, RequestInfo{client, "POST", {}}),
            FilterStatus::Continue);
  EXPECT_EQ(stream.limit, 64u * 1024);
}

}  // namespace
}  // namespace portico::filters
