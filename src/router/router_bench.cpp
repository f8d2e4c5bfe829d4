// Route lookup cost against table size: 10 vs 100,000 routes should cost the same per lookup,
// since a lookup walks one trie node per path segment and never scans the table.
//   portico_router_bench --benchmark_min_time=0.1

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "router/router.hpp"

namespace portico::router {
namespace {

using PathKind = config::RouteMatch::PathKind;

config::Route makeRoute(PathKind kind, std::string path) {
  config::Route route;
  route.match.path_kind = kind;
  route.match.path = std::move(path);
  return route;
}

// Per service N, in this order: prefix /svcN, exact /svcN/status, template /svcN/items/{id}
// (GET only), cut off at `count` routes.
std::vector<config::Route> makeTable(size_t count) {
  std::vector<config::Route> routes;
  routes.reserve(count);
  for (size_t i = 0; routes.size() < count; ++i) {
    const std::string svc = "/svc" + std::to_string(i);
    routes.push_back(makeRoute(PathKind::Prefix, svc));
    if (routes.size() < count) routes.push_back(makeRoute(PathKind::Exact, svc + "/status"));
    if (routes.size() < count) {
      routes.push_back(makeRoute(PathKind::Template, svc + "/items/{id}"));
      routes.back().match.methods = {"GET"};
    }
  }
  return routes;
}

// Services whose three routes are all in a table of `count` routes: the middle one and the last.
std::vector<size_t> probedServices(size_t count) {
  const size_t full = count / 3;
  return {full / 2, full - 1};
}

// Looks up `pathFor(service)` for the middle and the last service, alternately.
template <class PathFor>
void runLookups(benchmark::State& state, PathFor pathFor) {
  const auto count = static_cast<size_t>(state.range(0));
  const Router router(makeTable(count));
  std::vector<std::string> paths;
  for (const size_t service : probedServices(count)) paths.push_back(pathFor(service));

  size_t i = 0;
  for (auto _ : state) {
    const RequestView request{"GET", "api.example.com", paths[i], "", {}};
    MatchResult result = router.match(request);
    if (result.status != MatchStatus::Matched) {
      state.SkipWithError("lookup did not match");
      break;
    }
    benchmark::DoNotOptimize(result);
    i = (i + 1) % paths.size();
  }
  state.counters["routes"] = static_cast<double>(router.size());
}

void BM_LookupPrefix(benchmark::State& state) {
  runLookups(state, [](size_t s) { return "/svc" + std::to_string(s) + "/users/7/profile"; });
}

void BM_LookupExact(benchmark::State& state) {
  runLookups(state, [](size_t s) { return "/svc" + std::to_string(s) + "/status"; });
}

void BM_LookupTemplate(benchmark::State& state) {
  runLookups(state, [](size_t s) { return "/svc" + std::to_string(s) + "/items/12345"; });
}

// The control-thread cost of a config reload: compiling the whole table.
void BM_Compile(benchmark::State& state) {
  const std::vector<config::Route> routes = makeTable(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    Router router(routes);
    benchmark::DoNotOptimize(router);
  }
}

BENCHMARK(BM_LookupPrefix)->Arg(10)->Arg(100'000);
BENCHMARK(BM_LookupExact)->Arg(10)->Arg(100'000);
BENCHMARK(BM_LookupTemplate)->Arg(10)->Arg(100'000);
BENCHMARK(BM_Compile)->Arg(100'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace portico::router
