#include "router/router.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace portico::router {
namespace {

using PathKind = config::RouteMatch::PathKind;

// Builds a config::Route as the loader would hand it over (already validated).
class RouteBuilder {
 public:
  RouteBuilder(PathKind kind, std::string path) {
    route_.match.path_kind = kind;
    route_.match.path = std::move(path);
  }
  RouteBuilder& hosts(std::initializer_list<std::string> hosts) {
    route_.match.hosts = hosts;
    return *this;
  }
  RouteBuilder& methods(std::initializer_list<std::string> methods) {
    route_.match.methods = methods;
    return *this;
  }
  RouteBuilder& header(std::string name, std::string value, bool regex = false) {
    route_.match.headers.push_back({std::move(name), std::move(value), regex});
    return *this;
  }
  RouteBuilder& query(std::string name, std::string value, bool regex = false) {
    route_.match.query.push_back({std::move(name), std::move(value), regex});
    return *this;
  }
  RouteBuilder& priority(int32_t priority) {
    route_.priority = priority;
    return *this;
  }
  RouteBuilder& stripPrefix() {
    route_.rewrite.strip_prefix = true;
    return *this;
  }
  RouteBuilder& rewritePath(std::string path) {
    route_.rewrite.path = std::move(path);
    return *this;
  }
  operator config::Route() const { return route_; }  // NOLINT: builder

 private:
  config::Route route_;
};

RouteBuilder prefix(std::string path) { return {PathKind::Prefix, std::move(path)}; }
RouteBuilder exact(std::string path) { return {PathKind::Exact, std::move(path)}; }
RouteBuilder pathTemplate(std::string path) { return {PathKind::Template, std::move(path)}; }
RouteBuilder regex(std::string pattern) { return {PathKind::Regex, std::move(pattern)}; }
RouteBuilder anyPath() { return {PathKind::Any, ""}; }

struct Request {
  std::string_view method = "GET";
  std::string_view path = "/";
  std::string_view host;
  std::string_view query;
  std::vector<http::HeaderField> headers;
};

MatchResult matchRequest(const Router& router, const Request& r) {
  return router.match(RequestView{r.method, r.host, r.path, r.query, r.headers});
}

constexpr int kNotFound = -1;
constexpr int kMethodNotAllowed = -2;

// The matched route index, or kNotFound / kMethodNotAllowed: one value to compare per lookup.
int routeFor(const Router& router, const Request& r) {
  const MatchResult result = matchRequest(router, r);
  switch (result.status) {
    case MatchStatus::Matched:
      return static_cast<int>(result.route_index);
    case MatchStatus::NotFound:
      return kNotFound;
    case MatchStatus::MethodNotAllowed:
      return kMethodNotAllowed;
  }
  return kNotFound;
}

int routeFor(const Router& router, std::string_view path) {
  return routeFor(router, Request{.path = path});
}

std::string rewritten(const Router& router, const Request& r) {
  const MatchResult result = matchRequest(router, r);
  std::string out;
  router.rewrite(result, r.path, out);
  return out;
}

// --- paths ---

TEST(Router, EmptyTableFindsNothing) {
  const Router router({});
  EXPECT_EQ(0u, router.size());
  EXPECT_EQ(kNotFound, routeFor(router, "/"));
}

TEST(Router, PrefixMatchesItselfAndEverythingBelow) {
  const Router router({prefix("/users")});
  EXPECT_EQ(0, routeFor(router, "/users"));
  EXPECT_EQ(0, routeFor(router, "/users/"));
  EXPECT_EQ(0, routeFor(router, "/users/7"));
  EXPECT_EQ(0, routeFor(router, "/users/7/orders/"));
}

TEST(Router, PrefixMatchesWholeSegmentsOnly) {
  const Router router({prefix("/users")});
  EXPECT_EQ(kNotFound, routeFor(router, "/usersx"));
  EXPECT_EQ(kNotFound, routeFor(router, "/user"));
  EXPECT_EQ(kNotFound, routeFor(router, "/"));
}

TEST(Router, RootPrefixMatchesEverything) {
  const Router router({prefix("/")});
  EXPECT_EQ(0, routeFor(router, "/"));
  EXPECT_EQ(0, routeFor(router, "/anything/at/all"));
}

TEST(Router, PicksLongestPrefix) {
  const Router router({prefix("/"), prefix("/api"), prefix("/api/v1/users"), prefix("/api/v1")});
  EXPECT_EQ(2, routeFor(router, "/api/v1/users/7"));
  EXPECT_EQ(3, routeFor(router, "/api/v1/orders"));
  EXPECT_EQ(1, routeFor(router, "/api/v2"));
  EXPECT_EQ(0, routeFor(router, "/other"));
}

TEST(Router, ExactMatchesOnlyThatPath) {
  const Router router({exact("/health")});
  EXPECT_EQ(0, routeFor(router, "/health"));
  EXPECT_EQ(kNotFound, routeFor(router, "/health/"));
  EXPECT_EQ(kNotFound, routeFor(router, "/health/x"));
  EXPECT_EQ(kNotFound, routeFor(router, "/healthz"));
}

TEST(Router, ExactTrailingSlashIsSignificant) {
  const Router router({exact("/a/"), exact("/a")});
  EXPECT_EQ(0, routeFor(router, "/a/"));
  EXPECT_EQ(1, routeFor(router, "/a"));
}

TEST(Router, ExactRoot) {
  const Router router({exact("/")});
  EXPECT_EQ(0, routeFor(router, "/"));
  EXPECT_EQ(kNotFound, routeFor(router, "/a"));
}

TEST(Router, TemplateCapturesParams) {
  const Router router({pathTemplate("/users/{id}/orders/{order}")});
  const Request request{.path = "/users/42/orders/abc"};
  const MatchResult result = matchRequest(router, request);
  ASSERT_EQ(MatchStatus::Matched, result.status);
  ASSERT_EQ(2, result.params.count);
  EXPECT_EQ("id", result.params.names[0]);
  EXPECT_EQ("42", result.params.values[0]);
  EXPECT_EQ("order", result.params.names[1]);
  EXPECT_EQ("abc", result.params.values[1]);
  // Views into the request path, not copies.
  EXPECT_EQ(request.path.data() + 7, result.params.values[0].data());
}

TEST(Router, TemplateMatchesExactlyItsSegmentCount) {
  const Router router({pathTemplate("/users/{id}")});
  EXPECT_EQ(0, routeFor(router, "/users/7"));
  EXPECT_EQ(kNotFound, routeFor(router, "/users"));
  EXPECT_EQ(kNotFound, routeFor(router, "/users/"));
  EXPECT_EQ(kNotFound, routeFor(router, "/users/7/x"));
  EXPECT_EQ(kNotFound, routeFor(router, "/users/7/"));
}

TEST(Router, TemplateParamAtRoot) {
  const Router router({pathTemplate("/{tenant}")});
  EXPECT_EQ(0, routeFor(router, "/acme"));
  EXPECT_EQ(kNotFound, routeFor(router, "/"));
}

TEST(Router, ExactBeatsTemplateBeatsPrefix) {
  const Router router({prefix("/users"), pathTemplate("/users/{id}"), exact("/users/me")});
  EXPECT_EQ(2, routeFor(router, "/users/me"));
  EXPECT_EQ(1, routeFor(router, "/users/7"));
  EXPECT_EQ(0, routeFor(router, "/users/7/orders"));
}

TEST(Router, TemplateWithMoreLiteralSegmentsWins) {
  const Router router({pathTemplate("/{a}/{b}/posts"), pathTemplate("/users/{id}/posts")});
  EXPECT_EQ(1, routeFor(router, "/users/7/posts"));
  EXPECT_EQ(0, routeFor(router, "/groups/7/posts"));
}

TEST(Router, TemplateBacktracksFromLiteralBranch) {
  // The literal branch "me" exists but its route fails on a header: the {id} branch must still
  // be tried, with its own captures.
  const Router router(
      {pathTemplate("/users/me/{tab}").header("x-beta", "1"), pathTemplate("/users/{id}/{tab}")});
  const MatchResult result = matchRequest(router, {.path = "/users/me/settings"});
  ASSERT_EQ(MatchStatus::Matched, result.status);
  EXPECT_EQ(1u, result.route_index);
  ASSERT_EQ(2, result.params.count);
  EXPECT_EQ("id", result.params.names[0]);
  EXPECT_EQ("me", result.params.values[0]);
  EXPECT_EQ("tab", result.params.names[1]);
  EXPECT_EQ("settings", result.params.values[1]);
}

TEST(Router, TemplateWithTooManyParamsIsRejectedAtCompile) {
  std::string path;
  for (size_t i = 0; i <= PathParams::kMax; ++i) {
    path += "/{p" + std::to_string(i) + "}";
  }
  EXPECT_THROW(Router({pathTemplate(path)}), std::invalid_argument);
}

TEST(Router, RegexMatchesWholePath) {
  const Router router({regex("/v[0-9]+/items")});
  EXPECT_EQ(0, routeFor(router, "/v12/items"));
  EXPECT_EQ(kNotFound, routeFor(router, "/v12/items/3"));
  EXPECT_EQ(kNotFound, routeFor(router, "/x/v12/items"));
}

TEST(Router, RegexRanksBelowPrefixAndAboveAnyPath) {
  const Router router({anyPath(), regex("/api/.*"), prefix("/api")});
  EXPECT_EQ(2, routeFor(router, "/api/x"));
  const Router without_prefix({anyPath(), regex("/api/.*")});
  EXPECT_EQ(1, routeFor(without_prefix, "/api/x"));
  EXPECT_EQ(0, routeFor(without_prefix, "/other"));
}

TEST(Router, AnyPathMatchesEveryPath) {
  const Router router({anyPath()});
  EXPECT_EQ(0, routeFor(router, "/"));
  EXPECT_EQ(0, routeFor(router, "/a/b/c/"));
}

// --- hosts ---

TEST(Router, ExactHostMatchesOnlyThatHost) {
  const Router router({prefix("/").hosts({"api.example.com"})});
  EXPECT_EQ(0, routeFor(router, {.path = "/x", .host = "api.example.com"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/x", .host = "www.example.com"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/x", .host = "example.com"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/x"}));
}

TEST(Router, WildcardHostMatchesOneOrMoreLabels) {
  const Router router({prefix("/").hosts({"*.example.com"})});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .host = "a.example.com"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/", .host = "a.b.example.com"}));
}

TEST(Router, WildcardHostDoesNotMatchApexOrLookalikes) {
  const Router router({prefix("/").hosts({"*.example.com"})});
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .host = "example.com"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .host = "badexample.com"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .host = "a.example.com.evil"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .host = ".example.com"}));
}

TEST(Router, RouteWithoutHostsMatchesAnyHost) {
  const Router router({prefix("/")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .host = "anything.test"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/", .host = ""}));
}

TEST(Router, RouteWithSeveralHostsMatchesEach) {
  const Router router({prefix("/").hosts({"a.test", "*.b.test", "a.test"})});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .host = "a.test"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/", .host = "x.b.test"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .host = "c.test"}));
}

TEST(Router, HostRoutesAndHostlessRoutesCompete) {
  // Same path: the host is one more condition, so the host route wins where it applies.
  const Router router({prefix("/api"), prefix("/api").hosts({"api.test"}), prefix("/api/v1")});
  EXPECT_EQ(1, routeFor(router, {.path = "/api/x", .host = "api.test"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/api/x", .host = "other.test"}));
  // A longer hostless prefix is more specific than a host route.
  EXPECT_EQ(2, routeFor(router, {.path = "/api/v1/x", .host = "api.test"}));
}

TEST(Router, ExactAndWildcardHostsCompeteByRank) {
  const Router router(
      {prefix("/").hosts({"*.example.com"}), prefix("/a").hosts({"x.example.com"})});
  EXPECT_EQ(1, routeFor(router, {.path = "/a", .host = "x.example.com"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/b", .host = "x.example.com"}));
}

// --- methods ---

TEST(Router, MethodNotAllowedListsAllowSortedAndUnique) {
  const Router router({prefix("/users").methods({"POST", "GET"}),
                       pathTemplate("/users/{id}").methods({"DELETE", "GET"})});
  const MatchResult result = matchRequest(router, {.method = "PUT", .path = "/users/7"});
  EXPECT_EQ(MatchStatus::MethodNotAllowed, result.status);
  EXPECT_EQ("DELETE, GET, POST", result.allow);
}

TEST(Router, MatchingMethodSelectsRoute) {
  const Router router({prefix("/users").methods({"GET"}), prefix("/users").methods({"POST"})});
  EXPECT_EQ(0, routeFor(router, {.method = "GET", .path = "/users"}));
  EXPECT_EQ(1, routeFor(router, {.method = "POST", .path = "/users"}));
}

TEST(Router, MethodIsCheckedAfterRanking) {
  // The higher-priority route fails on its method alone; the next matching route is used.
  const Router router(
      {prefix("/users").methods({"GET"}).priority(10), prefix("/").methods({"POST"})});
  EXPECT_EQ(1, routeFor(router, {.method = "POST", .path = "/users"}));
}

TEST(Router, RouteWithoutMethodsWinsOverMethodNotAllowed) {
  const Router router({exact("/users").methods({"GET"}).priority(5), anyPath().priority(-5)});
  EXPECT_EQ(1, routeFor(router, {.method = "DELETE", .path = "/users"}));
}

TEST(Router, MethodIsCaseSensitive) {
  const Router router({prefix("/").methods({"GET"})});
  const MatchResult result = matchRequest(router, {.method = "get", .path = "/"});
  EXPECT_EQ(MatchStatus::MethodNotAllowed, result.status);
  EXPECT_EQ("GET", result.allow);
}

TEST(Router, AllowIgnoresRoutesFailingOtherConditions) {
  const Router router({prefix("/a").methods({"GET"}),
                       prefix("/a").methods({"PUT"}).header("x-v", "2"),
                       prefix("/b").methods({"PATCH"})});
  const MatchResult result = matchRequest(router, {.method = "POST", .path = "/a/1"});
  EXPECT_EQ(MatchStatus::MethodNotAllowed, result.status);
  EXPECT_EQ("GET", result.allow);
}

TEST(Router, NotFoundWhenOnlyOtherConditionsFail) {
  const Router router({prefix("/a").methods({"GET"}).header("x-v", "2")});
  EXPECT_EQ(kNotFound, routeFor(router, {.method = "POST", .path = "/a"}));
}

// --- headers ---

TEST(Router, HeaderExactValueMatches) {
  const Router router({prefix("/").header("x-api-version", "2")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .headers = {{"X-Api-Version", "2"}}}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .headers = {{"x-api-version", "3"}}}));
}

TEST(Router, HeaderNameIsCaseInsensitiveValueIsNot) {
  const Router router({prefix("/").header("x-mode", "Beta")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .headers = {{"X-MODE", "Beta"}}}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .headers = {{"x-mode", "beta"}}}));
}

TEST(Router, HeaderConditionNeedsTheHeader) {
  const Router router({prefix("/").header("x-empty", "")});
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/", .headers = {{"X-Empty", ""}}}));
}

TEST(Router, HeaderRegexIsFullMatch) {
  const Router router({prefix("/").header("user-agent", "curl/[0-9.]+", true)});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .headers = {{"User-Agent", "curl/8.5.0"}}}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .headers = {{"User-Agent", "x curl/8.5"}}}));
}

TEST(Router, AllHeaderConditionsMustMatch) {
  const Router router({prefix("/").header("a", "1").header("b", "2")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .headers = {{"b", "2"}, {"a", "1"}}}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .headers = {{"a", "1"}}}));
}

TEST(Router, FirstHeaderOccurrenceDecides) {
  const Router router({prefix("/").header("x-v", "2")});
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .headers = {{"x-v", "1"}, {"x-v", "2"}}}));
}

// --- query ---

TEST(Router, QueryExactValueMatches) {
  const Router router({prefix("/").query("beta", "true")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = "a=1&beta=true"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = "beta=false"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = ""}));
}

TEST(Router, QueryNameMustMatchExactly) {
  const Router router({prefix("/").query("beta", "true")});
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = "betax=true"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = "Beta=true"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = "xbeta=true"}));
}

TEST(Router, QueryParamWithoutValueHasEmptyValue) {
  const Router router({prefix("/").query("debug", "")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = "debug"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = "x=1&debug=&y"}));
}

TEST(Router, QueryValueIsPercentDecodedForCompare) {
  const Router router({prefix("/").query("name", "a b/c")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = "name=a%20b%2Fc"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = "name=a+b/c"}));
}

TEST(Router, QueryRegexIsFullMatchOnDecodedValue) {
  const Router router({prefix("/").query("v", "[0-9]+", true)});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = "v=123"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = "v=%31%32"}));
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = "v=12a"}));
}

TEST(Router, QueryRegexDecodesLongValues) {
  const Router router({prefix("/").query("v", "x*", true)});
  std::string query = "v=";
  for (int i = 0; i < 300; ++i) query += "%78";  // 900 raw bytes: beyond the stack buffer
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = query}));
}

TEST(Router, QueryBadPercentIsComparedLiterally) {
  const Router router({prefix("/").query("v", "%zz")});
  EXPECT_EQ(0, routeFor(router, {.path = "/", .query = "v=%zz"}));
}

TEST(Router, FirstQueryOccurrenceDecides) {
  const Router router({prefix("/").query("v", "2")});
  EXPECT_EQ(kNotFound, routeFor(router, {.path = "/", .query = "v=1&v=2"}));
}

// --- selection ---

TEST(Router, HigherPriorityBeatsSpecificity) {
  const Router router({exact("/a/b"), prefix("/").priority(1)});
  EXPECT_EQ(1, routeFor(router, "/a/b"));
}

TEST(Router, NegativePriorityRanksBelowDefault) {
  const Router router({exact("/a").priority(-1), prefix("/")});
  EXPECT_EQ(1, routeFor(router, "/a"));
}

TEST(Router, MoreConditionsWinAtEqualSpecificity) {
  const Router router({prefix("/api"), prefix("/api").query("beta", "true"),
                       prefix("/api").query("beta", "true").header("x-a", "1")});
  EXPECT_EQ(2, routeFor(router, {.path = "/api", .query = "beta=true", .headers = {{"x-a", "1"}}}));
  EXPECT_EQ(1, routeFor(router, {.path = "/api", .query = "beta=true"}));
  EXPECT_EQ(0, routeFor(router, {.path = "/api"}));
}

TEST(Router, MethodsCountAsOneCondition) {
  const Router router({prefix("/a"), prefix("/a").methods({"GET", "HEAD"})});
  EXPECT_EQ(1, routeFor(router, {.method = "GET", .path = "/a"}));
  EXPECT_EQ(0, routeFor(router, {.method = "POST", .path = "/a"}));
}

TEST(Router, EarliestDeclaredWinsTies) {
  const Router router({prefix("/x"), prefix("/a"), prefix("/a")});
  EXPECT_EQ(1, routeFor(router, "/a"));
}

TEST(Router, RouteIndexIsDeclarationIndexNotRank) {
  const Router router({anyPath(), exact("/a"), prefix("/a")});
  EXPECT_EQ(1, routeFor(router, "/a"));
  EXPECT_EQ(2, routeFor(router, "/a/b"));
  EXPECT_EQ(0, routeFor(router, "/b"));
}

// --- rewrite ---

TEST(Router, StripPrefixRemovesMatchedPrefix) {
  const Router router({prefix("/api").stripPrefix()});
  EXPECT_EQ("/users", rewritten(router, {.path = "/api/users"}));
  EXPECT_EQ("/users/", rewritten(router, {.path = "/api/users/"}));
  EXPECT_EQ("/", rewritten(router, {.path = "/api"}));
  EXPECT_EQ("/", rewritten(router, {.path = "/api/"}));
}

TEST(Router, StripRootPrefixKeepsPath) {
  const Router router({prefix("/").stripPrefix()});
  EXPECT_EQ("/a/b", rewritten(router, {.path = "/a/b"}));
}

TEST(Router, RewriteTemplateSubstitutesParams) {
  const Router router({pathTemplate("/users/{id}/orders/{order}")
                           .rewritePath("/v2/orders/{order}/by-user/{id}/{id}")});
  EXPECT_EQ("/v2/orders/9/by-user/7/7", rewritten(router, {.path = "/users/7/orders/9"}));
}

TEST(Router, RewritePathWithoutParamsReplacesPath) {
  const Router router({exact("/old").rewritePath("/new")});
  EXPECT_EQ("/new", rewritten(router, {.path = "/old"}));
}

TEST(Router, NoRewriteKeepsPath) {
  const Router router({prefix("/api")});
  EXPECT_EQ("/api/users", rewritten(router, {.path = "/api/users"}));
}

TEST(Router, RewriteAppendsToOut) {
  const Router router({prefix("/api").stripPrefix()});
  const MatchResult result = matchRequest(router, {.path = "/api/x"});
  std::string out = "GET ";
  router.rewrite(result, "/api/x", out);
  EXPECT_EQ("GET /x", out);
}

TEST(Router, RewriteOfUnmatchedResultKeepsPath) {
  const Router router({prefix("/api").stripPrefix()});
  MatchResult result;
  std::string out;
  router.rewrite(result, "/api/x", out);
  EXPECT_EQ("/api/x", out);
}

// --- scale ---

std::vector<config::Route> largeTable(int services) {
  std::vector<config::Route> routes;
  routes.reserve(static_cast<size_t>(services) * 3);
  for (int i = 0; i < services; ++i) {
    const std::string svc = "/svc" + std::to_string(i);
    routes.push_back(prefix(svc));
    routes.push_back(exact(svc + "/status"));
    routes.push_back(pathTemplate(svc + "/items/{id}").methods({"GET"}));
  }
  return routes;
}

TEST(Router, HundredThousandRoutesFindTheRightOne) {
  const Router router(largeTable(33'334));
  EXPECT_EQ(100'002u, router.size());
  EXPECT_EQ(3 * 16'667, routeFor(router, "/svc16667/x/y"));
  EXPECT_EQ(3 * 33'333 + 1, routeFor(router, "/svc33333/status"));
  const MatchResult item = matchRequest(router, {.path = "/svc33332/items/abc"});
  ASSERT_EQ(MatchStatus::Matched, item.status);
  EXPECT_EQ(3u * 33'332 + 2, item.route_index);
  EXPECT_EQ("abc", item.params.values[0]);
  // The item template only allows GET, but the service prefix accepts any method.
  EXPECT_EQ(3 * 33'332, routeFor(router, {.method = "POST", .path = "/svc33332/items/abc"}));
  EXPECT_EQ(kNotFound, routeFor(router, "/svc33334"));
  EXPECT_EQ(kNotFound, routeFor(router, "/svc"));
}

}  // namespace
}  // namespace portico::router
