// The per-worker counters: series made on first use, histogram buckets, summing, and a reader
// walking the series while their writer appends.
#include "observability/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "observability/metrics_view.hpp"

namespace portico::observability {
namespace {

TEST(Histogram, BucketsByUpperBoundInclusive) {
  Histogram h;
  h.observeUs(0);        // <= 0.5 ms
  h.observeUs(500);      // == 0.5 ms: still the first bucket (le)
  h.observeUs(501);      // the second
  h.observeUs(300'000);  // 0.3 s: le 0.5
  h.observeUs(60'000'000);  // a minute: over every bound
  EXPECT_EQ(h.bucket(0), 2u);
  EXPECT_EQ(h.bucket(1), 1u);
  EXPECT_EQ(h.bucket(9), 1u);
  EXPECT_EQ(h.bucket(Histogram::kBuckets - 1), 1u);
  EXPECT_EQ(h.sumUs(), 60'301'001u);
}

TEST(Histogram, BoundsSpanUnder1msToOver2sAtMostFourApart) {
  EXPECT_LT(kDurationBounds.front(), 0.001);
  EXPECT_GT(kDurationBounds.back(), 2.0);
  for (size_t i = 1; i < kDurationBounds.size(); ++i) {
    EXPECT_LE(kDurationBounds[i] / kDurationBounds[i - 1], 4.0);
  }
}

TEST(Methods, KnownOnesByNameOthersAsOther) {
  EXPECT_EQ(methodLabel(methodOf("GET")), "GET");
  EXPECT_EQ(methodLabel(methodOf("PATCH")), "PATCH");
  EXPECT_EQ(methodLabel(methodOf("OPTIONS")), "OPTIONS");
  EXPECT_EQ(methodLabel(methodOf("get")), "OTHER");
  EXPECT_EQ(methodLabel(methodOf("PROPFIND")), "OTHER");
}

TEST(WorkerMetrics, SeriesMadeOnceAndSummedOverWorkers) {
  WorkerMetrics a(1), b(1);
  RouteMetrics& users = a.route("users");
  EXPECT_EQ(&users, &a.route("users"));
  for (int i = 0; i < 37; ++i) users.countRequest(HttpMethod::Get, 200, 100);
  for (int i = 0; i < 5; ++i) b.route("users").countRequest(HttpMethod::Get, 404, 100);
  b.route("users").countRequest(HttpMethod::Post, 200, 100);
  a.route("users").auth_failures.add(std::string("keys\0missing", 12));
  a.route("users").auth_failures.add(std::string("keys\0missing", 12));
  b.route("users").rate_limited.add("ip");
  a.upstream("u").endpoint("127.0.0.1:1").outcomes[1].add();
  b.upstream("u").endpoint("127.0.0.1:1").in_flight.add(2);
  a.connections(0).add(3);
  b.connections(0).add(1);
  b.connections(0).add(-1);

  const WorkerMetrics* shards[] = {&a, &b};
  MetricsView view = collectMetrics(shards, 1);
  const MetricsView::Route& route = view.routes.at("users");
  EXPECT_EQ(route.requests.at(200), 37u);  // GET (0) << 16 | 200
  EXPECT_EQ(route.requests.at(404), 5u);
  EXPECT_EQ(route.requests.at(2u << 16 | 200), 1u);
  EXPECT_EQ(route.duration.count(), 43u);
  EXPECT_EQ(route.auth_failures.at(std::string("keys\0missing", 12)), 2u);
  EXPECT_EQ(route.rate_limited.at("ip"), 1u);
  const MetricsView::Endpoint& endpoint = view.upstreams.at("u").endpoints.at("127.0.0.1:1");
  EXPECT_EQ(endpoint.requests(), 1u);
  EXPECT_EQ(endpoint.in_flight, 2);
  EXPECT_EQ(view.connections[0], 3);
}

TEST(WorkerMetrics, ReaderSeesEverySeriesWhileTheWriterAppends) {
  WorkerMetrics metrics(1);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 200; ++i) {
      RouteMetrics& r = metrics.route("route-" + std::to_string(i));
      for (int status = 200; status < 230; ++status) r.countRequest(HttpMethod::Get, status, 1);
    }
    done = true;
  });
  uint64_t last_total = 0;
  while (!done) {
    const WorkerMetrics* shards[] = {&metrics};
    MetricsView view = collectMetrics(shards, 1);
    uint64_t total = 0;
    for (const auto& [name, route] : view.routes) {
      for (const auto& [key, count] : route.requests) total += count;
    }
    EXPECT_GE(total, last_total);  // counts only grow
    last_total = total;
  }
  writer.join();
  const WorkerMetrics* shards[] = {&metrics};
  MetricsView view = collectMetrics(shards, 1);
  EXPECT_EQ(view.routes.size(), 200u);
  EXPECT_EQ(view.routes.at("route-199").requests.size(), 30u);
}

TEST(Prometheus, TextFormatWithEscapedLabelsAndCumulativeBuckets) {
  WorkerMetrics metrics(1);
  metrics.route("a\"b\\c").countRequest(HttpMethod::Get, 200, 2'000);
  metrics.route("a\"b\\c").countRequest(HttpMethod::Get, 200, 400);
  const WorkerMetrics* shards[] = {&metrics};
  ScrapeExtras extras;
  extras.listeners = {"public"};
  std::string text = renderPrometheus(collectMetrics(shards, 1), extras);
  EXPECT_NE(text.find("# TYPE portico_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find(R"(portico_requests_total{route="a\"b\\c",method="GET",status="200"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(portico_request_duration_seconds_bucket{route="a\"b\\c",le="0.0005"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(portico_request_duration_seconds_bucket{route="a\"b\\c",le="0.0025"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(portico_request_duration_seconds_bucket{route="a\"b\\c",le="+Inf"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(portico_connections_active{listener="public"} 0)"), std::string::npos);
  EXPECT_NE(text.find("process_resident_memory_bytes "), std::string::npos);
}

}  // namespace
}  // namespace portico::observability
