#pragma once
// The route matcher, compiled once per config snapshot and immutable afterwards, so all workers
// share one instance without locks. Lookup cost depends on the path's segment count and on the
// routes that can match it, never on the total number of prefix/exact/template routes.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "http/header.hpp"

namespace portico::router {

struct RequestView {
  std::string_view method;  // as received (methods are case-sensitive tokens)
  std::string_view host;    // lowercased, port removed; may be empty
  std::string_view path;    // normalized (http::normalizePath)
  std::string_view query;   // raw, after '?', without it; may be empty
  http::HeaderList headers;
};

// Values captured by a template route ("/users/{id}"): views into RequestView::path.
struct PathParams {
  static constexpr size_t kMax = 16;
  std::array<std::string_view, kMax> names;
  std::array<std::string_view, kMax> values;
  uint8_t count = 0;
};

enum class MatchStatus : uint8_t { Matched, NotFound, MethodNotAllowed };

struct MatchResult {
  MatchStatus status = MatchStatus::NotFound;
  uint32_t route_index = 0;  // index into the routes given to compile(); valid iff Matched
  PathParams params;         // valid iff Matched
  std::string allow;         // iff MethodNotAllowed: "GET, POST" (the union of the methods
                             // of the routes whose other conditions matched), sorted, unique
};

class Router {
 public:
  // `routes` must have passed the loader's validation. Compiles regexes and the segment tree.
  explicit Router(const std::vector<config::Route>& routes);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Picks the route for a request: among routes whose host, path, headers and query match, the
  // highest priority wins, then the most specific path (exact > template > prefix, longer
  // prefixes first > regex > any), then the one with more conditions, then the earliest declared.
  // If routes match everything but the method, the result is MethodNotAllowed with `allow`.
  MatchResult match(const RequestView& request) const;

  // The path to forward for a matched route: the route's rewrite applied to `path`
  // (strip_prefix removes the matched prefix, keeping a leading '/'; a template substitutes
  // {params}); without a rewrite, `path` itself. Appends to `out`.
  void rewrite(const MatchResult& result, std::string_view path, std::string& out) const;

  size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portico::router
