// The `routes` section: match, upstream/split, rewrite, auth, header edits. Loading must stay
// linear in the number of routes (configs with 100,000 routes are expected), so every
// cross-route check uses a hash set and suggestions are computed only when there is an error.

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "filters/auth/config.hpp"
#include "filters/cors/config.hpp"
#include "filters/headers/config.hpp"
#include "filters/ip_rules/config.hpp"
#include "filters/rate_limit/config.hpp"

namespace portico::config::detail {
namespace {

std::string uppercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 32);
    }
  }
  return out;
}

bool hasControlBreak(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

constexpr std::string_view kRouteKeys[] = {
    "name",    "match",     "priority", "upstream",       "split",      "rewrite",           "auth",
    "headers", "authorize", "timeout",  "max_body_bytes", "rate_limit", "concurrency_limit", "ip",
    "cors",    "grpc"};
constexpr std::string_view kRouteUnsupported[] = {"cache", "aggregate"};
constexpr std::string_view kMatchKeys[] = {"hosts",      "path_prefix", "path",    "path_exact",
                                           "path_regex", "methods",     "headers", "query"};
constexpr std::string_view kSplitKeys[] = {"upstream", "weight"};
constexpr std::string_view kRewriteKeys[] = {"strip_prefix", "path"};

const KeySet kRoute{kRouteKeys, kRouteUnsupported};
const KeySet kMatch{kMatchKeys, {}};
const KeySet kSplit{kSplitKeys, {}};
const KeySet kRewrite{kRewriteKeys, {}};

constexpr int64_t kMaxWeight = 1'000'000;
constexpr int64_t kMaxConcurrency = 10'000'000;

class RouteParser {
 public:
  RouteParser(Context& ctx, const Config& config)
      : ctx_(ctx), config_(config), upstreams_(config.upstreams),
        providers_(config.auth_providers) {}

  std::vector<Route> parse(const Item& item) {
    std::vector<Route> routes;
    std::vector<Item> entries = ctx_.readList(item, false);
    routes.reserve(entries.size());
    names_.reserve(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      MapFields map = ctx_.readMap(entries[i], "route", &kRoute);
      if (map.valid) {
        routes.push_back(parseRoute(map, i));
      }
    }
    return routes;
  }

 private:
  Route parseRoute(const MapFields& map, size_t index) {
    Route route;
    route.pos = SourcePos{map.pos.line, map.pos.column};
    route.name = "route-" + std::to_string(index + 1);
    Position name_pos = map.pos;
    bool generated = true;
    if (const Field* f = map.find("name")) {
      name_pos = ctx_.pos(f->item());
      if (auto name = ctx_.text(f->item())) {
        if (name->empty()) {
          ctx_.error(name_pos, "\"name\" must not be empty");
        }
        route.name = std::move(*name);
        generated = false;
      }
    }
    if (!names_.insert(route.name).second) {
      ctx_.error(name_pos, "duplicate route name " + quote(route.name) +
                               (generated ? " (a route without a name is called route-N)" : ""));
    }

    std::vector<std::string> params;
    if (const Field* f = map.find("match")) {
      parseMatch(f->item(), route.match, params);
    }
    if (const Field* f = map.find("priority")) {
      route.priority = static_cast<int32_t>(
          ctx_.integer(f->item(), INT32_MIN, INT32_MAX).value_or(route.priority));
    }
    parseTarget(map, route);
    if (const Field* f = map.find("rewrite")) {
      if (map.find("grpc") != nullptr) {
        ctx_.error(f->key_pos,
                   "\"rewrite\" cannot be combined with \"grpc\" (the method's "
                   "rule decides the upstream path)");
      } else {
        parseRewrite(f->item(), route, params);
      }
    }
    if (const Field* f = map.find("auth")) {
      filters::parseRouteAuth(ctx_, f->item(), providers_, route);
    } else {
      // Default deny: a route that forgot its auth must not silently become public.
      ctx_.error(map.pos, "route " + quote(route.name) +
                              " has no auth decision: add \"auth: public\" or name auth providers");
    }
    if (const Field* f = map.find("authorize")) {
      filters::parseRouteAuthorize(ctx_, *f, route);
    }
    if (const Field* f = map.find("rate_limit")) {
      filters::parseRouteRateLimits(ctx_, f->item(), config_, route);
    }
    if (const Field* f = map.find("ip")) {
      route.ip = filters::parseIpRules(ctx_, f->item());
    }
    if (const Field* f = map.find("cors")) {
      route.cors = filters::parseCors(ctx_, f->item());
      if (route.cors && servesGrpc(route)) exposeGrpcStatus(*route.cors);
    }
    if (const Field* f = map.find("concurrency_limit")) {
      route.concurrency_limit = static_cast<uint32_t>(
          ctx_.integer(f->item(), 1, kMaxConcurrency).value_or(0));
    }
    if (const Field* f = map.find("headers")) {
      filters::parseHeaders(ctx_, f->item(), route.request_headers, route.response_headers);
    }
    if (const Field* f = map.find("timeout")) {
      route.timeout = ctx_.duration(f->item(), true);
    }
    if (const Field* f = map.find("max_body_bytes")) {
      route.max_body_bytes = ctx_.size(f->item(), false);
    }
    return route;
  }

  bool servesGrpc(const Route& route) const {
    return route.grpc.has_value() ||
           std::any_of(route.split.begin(), route.split.end(), [&](const WeightedUpstream& w) {
             auto it = upstreams_.find(w.upstream);
             return it != upstreams_.end() && it->second.protocol == Upstream::Protocol::Grpc;
           });
  }

  // A browser's gRPC-Web client reads the call's status from these (docs/transcoding.md).
  static void exposeGrpcStatus(filters::CorsConfig& cors) {
    for (std::string_view name : {"grpc-status", "grpc-message"}) {
      if (std::none_of(cors.expose_headers.begin(), cors.expose_headers.end(),
                       [&](const std::string& h) { return h == name; })) {
        cors.expose_headers.emplace_back(name);
      }
    }
  }

  void parseMatch(const Item& item, RouteMatch& match, std::vector<std::string>& params) {
    MapFields map = ctx_.readMap(item, "match", &kMatch);
    const Field* path_field = nullptr;
    for (const Field& f : map.fields) {
      if (f.key == "hosts") {
        parseHosts(f.item(), match.hosts);
      } else if (f.key == "methods") {
        parseMethods(f.item(), match.methods);
      } else if (f.key == "headers") {
        parseHeaderMatches(f.item(), true, match.headers);
      } else if (f.key == "query") {
        parseHeaderMatches(f.item(), false, match.query);
      } else if (path_field != nullptr) {
        ctx_.error(f.key_pos, quote(f.key) + " cannot be combined with " + quote(path_field->key) +
                                  " (use one of path_prefix, path, path_exact, path_regex)");
      } else {
        path_field = &f;
        parsePath(f, match, params);
      }
    }
  }

  void parsePath(const Field& f, RouteMatch& match, std::vector<std::string>& params) {
    auto text = ctx_.text(f.item());
    if (!text) {
      return;
    }
    Position at = ctx_.pos(f.item());
    if (f.key == "path_regex") {
      if (auto problem = checkRegex(*text)) {
        ctx_.error(at, "invalid path_regex " + quote(*text) + ": " + *problem);
        return;
      }
      match.path_kind = RouteMatch::PathKind::Regex;
      match.path = std::move(*text);
      return;
    }
    if (f.key == "path_prefix" && (text->ends_with("/*") || text->ends_with("/**"))) {
      std::string base = text->substr(0, text->rfind('/'));
      ctx_.error(at, "path_prefix " + quote(*text) +
                         " ends in a '*' segment, which is matched "
                         "literally (path_prefix " +
                         quote(base.empty() ? "/" : base) +
                         " already matches everything below it)");
      return;
    }
    std::vector<std::string> found;
    if (auto problem = checkPath(
            f.key, *text, f.key == "path" ? PathSyntax::Template : PathSyntax::Literal, &found)) {
      ctx_.error(at, *problem);
      return;
    }
    match.path = std::move(*text);
    if (f.key == "path_prefix") {
      match.path_kind = RouteMatch::PathKind::Prefix;
      // Prefixes match whole segments, so "/users/" and "/users" mean the same.
      if (match.path.size() > 1 && match.path.back() == '/') {
        match.path.pop_back();
      }
    } else if (f.key == "path" && !found.empty()) {
      match.path_kind = RouteMatch::PathKind::Template;
      params = std::move(found);
    } else {
      // A template without parameters is an exact path; saying so lets the router use its
      // exact-match table and rank it as the more specific kind.
      match.path_kind = RouteMatch::PathKind::Exact;
    }
  }

  void parseHosts(const Item& item, std::vector<std::string>& hosts) {
    for (const Item& entry : ctx_.readList(item, true)) {
      auto text = ctx_.text(entry);
      if (!text) {
        continue;
      }
      std::string host;
      if (auto problem = checkHostPattern(*text, host)) {
        ctx_.error(ctx_.pos(entry), *problem);
      } else if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
        hosts.push_back(std::move(host));
      }
    }
  }

  void parseMethods(const Item& item, std::vector<std::string>& methods) {
    for (const Item& entry : ctx_.readList(item, true)) {
      auto text = ctx_.text(entry);
      if (!text) {
        continue;
      }
      if (!isToken(*text)) {
        ctx_.error(ctx_.pos(entry), "invalid method " + quote(*text));
        continue;
      }
      std::string method = uppercase(*text);
      if (std::find(methods.begin(), methods.end(), method) == methods.end()) {
        methods.push_back(std::move(method));
      }
    }
  }

  // match.headers (names are tokens, compared lowercased) and match.query (names as written).
  void parseHeaderMatches(const Item& item, bool headers, std::vector<HeaderMatch>& out) {
    const std::string where = headers ? "match.headers" : "match.query";
    MapFields map = ctx_.readMap(item, where, nullptr);
    for (const Field& f : map.fields) {
      HeaderMatch m;
      if (headers) {
        if (!isToken(f.key)) {
          ctx_.error(f.key_pos, "invalid header name " + quote(f.key) + " in " + where);
          continue;
        }
        m.name = lowercase(f.key);
        bool duplicate = std::any_of(out.begin(), out.end(),
                                     [&m](const HeaderMatch& o) { return o.name == m.name; });
        if (duplicate) {
          ctx_.error(f.key_pos, "duplicate header " + quote(m.name) + " in " + where);
          continue;
        }
      } else {
        if (f.key.empty()) {
          ctx_.error(f.key_pos, "empty query parameter name in " + where);
          continue;
        }
        m.name = std::string(f.key);
      }
      auto value = ctx_.text(f.item());
      if (!value) {
        continue;
      }
      const std::string what =
          headers ? "header " + quote(f.key) : "query parameter " + quote(f.key);
      if (!value->empty() && value->front() == '~') {
        m.is_regex = true;
        m.value = value->substr(1);
        if (auto problem = checkRegex(m.value)) {
          ctx_.error(ctx_.pos(f.item()),
                     "invalid regex " + quote(m.value) + " for " + what + ": " + *problem);
          continue;
        }
      } else {
        if (hasControlBreak(*value)) {
          ctx_.error(ctx_.pos(f.item()),
                     "invalid value for " + what + " (must not contain CR, LF or NUL)");
          continue;
        }
        m.value = std::move(*value);
      }
      out.push_back(std::move(m));
    }
  }

  void parseTarget(const MapFields& map, Route& route) {
    const Field* upstream = map.find("upstream");
    const Field* split = map.find("split");
    if (const Field* grpc = map.find("grpc")) {
      if (upstream != nullptr || split != nullptr) {
        const Field* other = upstream != nullptr ? upstream : split;
        ctx_.error(other->key_pos, quote(other->key) +
                                       " cannot be combined with \"grpc\" (the service names "
                                       "its upstream)");
        return;
      }
      if (parseRouteGrpc(ctx_, grpc->item(), config_, route)) {
        route.split.push_back(
            WeightedUpstream{config_.grpc_services.at(route.grpc->service).upstream, 1});
      }
      return;
    }
    if (upstream == nullptr && split == nullptr) {
      if (map.unsupported_seen) {
        return;  // e.g. an `aggregate:` route, already refused as unsupported
      }
      ctx_.error(map.pos, "route " + quote(route.name) + " needs \"upstream\" or \"split\"");
      return;
    }
    if (upstream != nullptr && split != nullptr) {
      bool split_later = split->key_pos.line > upstream->key_pos.line ||
                         (split->key_pos.line == upstream->key_pos.line &&
                          split->key_pos.column > upstream->key_pos.column);
      const Field* later = split_later ? split : upstream;
      const Field* earlier = split_later ? upstream : split;
      ctx_.error(later->key_pos, quote(later->key) + " cannot be combined with " +
                                     quote(earlier->key) + " (use one of them)");
      return;
    }
    if (upstream != nullptr) {
      if (auto name = upstreamName(upstream->item())) {
        route.split.push_back(WeightedUpstream{std::move(*name), 1});
      }
      return;
    }
    for (const Item& entry : ctx_.readList(split->item(), true)) {
      MapFields m = ctx_.readMap(entry, "split", &kSplit);
      ctx_.requireKey(m, "upstream", "split");
      WeightedUpstream target;
      bool ok = m.valid;
      if (const Field* f = m.find("upstream")) {
        auto name = upstreamName(f->item());
        ok = ok && name.has_value();
        target.upstream = name.value_or("");
      }
      if (const Field* f = m.find("weight")) {
        // 0: the upstream gets nothing (SPEC §3), a way to drain one without removing it.
        auto weight = ctx_.integer(f->item(), 0, kMaxWeight);
        ok = ok && weight.has_value();
        target.weight = static_cast<uint32_t>(weight.value_or(1));
      }
      if (ok && m.find("upstream") != nullptr) {
        route.split.push_back(std::move(target));
      }
    }
    if (!route.split.empty() &&
        std::all_of(route.split.begin(), route.split.end(),
                    [](const WeightedUpstream& w) { return w.weight == 0; })) {
      ctx_.error(split->key_pos, "route " + quote(route.name) +
                                     ": at least one \"split\" weight must be above 0");
    }
  }

  // The name of an existing upstream, or nullopt with an error (and a suggestion if close).
  std::optional<std::string> upstreamName(const Item& item) {
    auto name = ctx_.text(item);
    if (!name) {
      return std::nullopt;
    }
    if (upstreams_.count(*name) != 0) {
      return name;
    }
    if (candidates_.empty()) {
      for (const auto& [key, value] : upstreams_) {
        candidates_.push_back(key);
      }
    }
    std::string message = "unknown upstream " + quote(*name);
    if (auto suggestion = closestMatch(*name, candidates_)) {
      message += " (did you mean " + quote(*suggestion) + "?)";
    }
    ctx_.error(ctx_.pos(item), std::move(message));
    return std::nullopt;
  }

  void parseRewrite(const Item& item, Route& route, const std::vector<std::string>& params) {
    MapFields map = ctx_.readMap(item, "rewrite", &kRewrite);
    const Field* strip = map.find("strip_prefix");
    const Field* path = map.find("path");
    if (strip != nullptr) {
      route.rewrite.strip_prefix = ctx_.boolean(strip->item()).value_or(false);
      if (route.rewrite.strip_prefix && route.match.path_kind != RouteMatch::PathKind::Prefix) {
        ctx_.error(strip->key_pos, "\"strip_prefix\" needs match.path_prefix");
      }
    }
    if (path == nullptr) {
      return;
    }
    if (route.rewrite.strip_prefix) {
      ctx_.error(path->key_pos,
                 "\"path\" cannot be combined with \"strip_prefix\" (use one of "
                 "them)");
      return;
    }
    auto text = ctx_.text(path->item());
    if (!text) {
      return;
    }
    std::vector<std::string> used;
    if (auto problem = checkPath("rewrite.path", *text, PathSyntax::Rewrite, &used)) {
      ctx_.error(ctx_.pos(path->item()), *problem);
      return;
    }
    for (const std::string& name : used) {
      if (std::find(params.begin(), params.end(), name) == params.end()) {
        ctx_.error(ctx_.pos(path->item()),
                   "rewrite parameter \"{" + name + "}\" is not captured by match.path");
        return;
      }
    }
    route.rewrite.path = std::move(*text);
  }

  // `auth: public`, or a non-empty list of auth provider names (any one authenticates).
  Context& ctx_;
  const Config& config_;
  const std::map<std::string, Upstream>& upstreams_;
  const std::map<std::string, AuthProvider>& providers_;
  std::unordered_set<std::string> names_;
  std::vector<std::string_view> candidates_;  // upstream names, built on the first unknown one
};

}  // namespace

std::vector<Route> parseRoutes(Context& ctx, const Item& item, const Config& config) {
  return RouteParser(ctx, config).parse(item);
}

}  // namespace portico::config::detail
