#include "router/router.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "router/segment_tree.hpp"

// How a lookup works (see also segment_tree.hpp):
// - Routes are sorted once by the selection rules and renumbered by rank (0 = preferred), so
//   choosing between candidates is one integer compare, and every list is in rank order.
// - Routes are split into host buckets: one per exact host, one per wildcard suffix
//   ("*.example.com" is found by looking up ".example.com", ".com"... of the request host in a
//   hash table, one probe per label), and one for routes without hosts. A route listing several
//   hosts sits in several buckets.
// - In a bucket, prefix/exact/template routes hang off a segment trie. path_regex routes and
//   routes without a path condition are in two side lists scanned linearly: regexes cannot be
//   indexed, and both kinds are expected to be few. Scans stop at the first full match, and at
//   any route ranked below the best match found so far.
// - A match is "best rank among candidates that match everything including the method". Only if
//   there is none, and some candidate failed on the method alone, a second walk collects the
//   methods for Allow: the only allocation of a lookup.
// - Trailing slashes: exact and template paths match only with the same trailing slash
//   ("/users/{id}" does not match "/users/7/"); a prefix matches both. rewrite.path replaces the
//   whole forwarded path (it wins over strip_prefix should both be set).
// - Compile errors (a regex RE2 rejects, more than PathParams::kMax params) throw
//   std::invalid_argument from the constructor: the loader already refuses them.

namespace portico::router {
namespace {

using PathKind = config::RouteMatch::PathKind;

constexpr uint32_t kExactHostTag = 0;     // EdgeMap parent tags for the host table
constexpr uint32_t kWildcardHostTag = 1;  // key: the suffix with its dot, ".example.com"

struct Condition {
  std::string name;
  std::string value;
  std::unique_ptr<RE2> regex;  // set iff the condition is a regex
};

struct RewritePiece {
  std::string literal;
  int param = -1;  // >= 0: substitute PathParams value at that index instead
};

struct CompiledRoute {
  uint32_t index = 0;  // in the routes given to the constructor
  PathKind kind = PathKind::Any;
  std::string path;  // the prefix, for strip_prefix
  std::unique_ptr<RE2> path_regex;
  std::vector<std::string> param_names;  // template {params}, in path order
  std::vector<std::string> methods;
  std::vector<Condition> headers;
  std::vector<Condition> query;
  bool strip_prefix = false;
  bool rewrite_path = false;
  std::vector<RewritePiece> rewrite;
};

struct Bucket {
  uint32_t root = 0;
  std::vector<uint32_t> regex;     // ranks, ascending
  std::vector<uint32_t> any_path;  // ranks, ascending
};

std::unique_ptr<RE2> compileRegex(const std::string& pattern, const config::Route& route) {
  RE2::Options options;
  options.set_log_errors(false);
  auto regex = std::make_unique<RE2>(pattern, options);
  if (!regex->ok()) {
    // The loader rejects these; reaching here is a broken precondition on the control thread.
    throw std::invalid_argument("route " + route.name + ": bad regex: " + regex->error());
  }
  return regex;
}

std::vector<Condition> compileConditions(const std::vector<config::HeaderMatch>& matches,
                                         const config::Route& route) {
  std::vector<Condition> conditions;
  conditions.reserve(matches.size());
  for (const auto& m : matches) {
    conditions.push_back(
        Condition{m.name, m.value, m.is_regex ? compileRegex(m.value, route) : nullptr});
  }
  return conditions;
}

// Calls fn(segment) for each segment of a normalized path; returns whether it ends with '/'.
// "/" has no segments and no trailing slash (it is the root itself).
template <class Fn>
bool forEachSegment(std::string_view path, Fn&& fn) {
  if (path.size() <= 1) return false;
  size_t pos = 1;
  while (true) {
    const size_t end = path.find('/', pos);
    if (end == std::string_view::npos) {
      fn(path.substr(pos));
      return false;
    }
    fn(path.substr(pos, end - pos));
    if (end + 1 == path.size()) return true;
    pos = end + 1;
  }
}

bool isParamSegment(std::string_view segment) {
  return segment.size() >= 3 && segment.front() == '{' && segment.back() == '}';
}

// The selection order of SPEC §3 / router.hpp as a sortable key; smaller sorts first.
struct RankKey {
  int64_t neg_priority;
  int specificity;     // negated: exact, template, prefix, regex, any
  int64_t neg_detail;  // template: literal segment count; prefix: length
  int64_t neg_conditions;
  uint32_t index;
  auto operator<=>(const RankKey&) const = default;
};

RankKey rankKey(const config::Route& route, uint32_t index) {
  const auto& m = route.match;
  int specificity = 0;
  int64_t detail = 0;
  switch (m.path_kind) {
    case PathKind::Exact:
      specificity = 4;
      break;
    case PathKind::Template:
      specificity = 3;
      forEachSegment(m.path, [&](std::string_view s) { detail += isParamSegment(s) ? 0 : 1; });
      break;
    case PathKind::Prefix:
      specificity = 2;
      detail = static_cast<int64_t>(m.path.size());
      break;
    case PathKind::Regex:
      specificity = 1;
      break;
    case PathKind::Any:
      specificity = 0;
      break;
  }
  // Each kind of condition counts once, each header/query condition once: more methods make a
  // route less selective, not more.
  const auto conditions = static_cast<int64_t>(
      (m.methods.empty() ? 0 : 1) + (m.hosts.empty() ? 0 : 1) + m.headers.size() + m.query.size());
  return RankKey{-static_cast<int64_t>(route.priority), -specificity, -detail, -conditions, index};
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a query value into `out` (which has room for raw.size() bytes) and returns the
// decoded length. A '%' not followed by two hex digits stays as it is; '+' stays '+'.
size_t decodeQueryValue(std::string_view raw, char* out) {
  size_t n = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%' && i + 2 < raw.size()) {
      const int hi = hexDigit(raw[i + 1]);
      const int lo = hexDigit(raw[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out[n++] = static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out[n++] = raw[i];
  }
  return n;
}

// Query conditions compare the value percent-decoded (%XX only: '+' means a space only in HTML
// forms, RFC 3986 gives it no meaning), so a configured "a b" matches "a%20b" and "a b" alike,
// the way users write values in YAML. Parameter names are compared raw and case-sensitively.
bool queryValueMatches(std::string_view raw, const Condition& condition) {
  if (raw.find('%') == std::string_view::npos) {
    return condition.regex ? RE2::FullMatch(raw, *condition.regex) : raw == condition.value;
  }
  // Decoding never lengthens the value; a stack buffer covers the usual short values.
  char stack_buffer[512];
  std::string heap_buffer;
  char* buffer = stack_buffer;
  if (raw.size() > sizeof(stack_buffer)) {
    heap_buffer.resize(raw.size());
    buffer = heap_buffer.data();
  }
  const std::string_view decoded(buffer, decodeQueryValue(raw, buffer));
  return condition.regex ? RE2::FullMatch(decoded, *condition.regex) : decoded == condition.value;
}

// The raw value of the first query parameter named `name` ("a" in "a=1&b"; "b" has value "").
bool findQueryParam(std::string_view query, std::string_view name, std::string_view& value) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
  }
  return false;
}

// For a repeated header or query parameter the first occurrence decides, as everywhere else in
// the gateway (http::findHeader), so routing sees the same value as the filters that follow.
bool conditionsMatch(const CompiledRoute& route, const RequestView& request) {
  for (const Condition& c : route.headers) {
    const http::HeaderField* field = http::findHeader(request.headers, c.name);
    if (field == nullptr) return false;
    if (c.regex ? !RE2::FullMatch(field->value, *c.regex) : field->value != c.value) return false;
  }
  for (const Condition& c : route.query) {
    std::string_view value;
    if (!findQueryParam(request.query, c.name, value)) return false;
    if (!queryValueMatches(value, c)) return false;
  }
  return true;
}

bool methodMatches(const CompiledRoute& route, std::string_view method) {
  if (route.methods.empty()) return true;
  return std::find(route.methods.begin(), route.methods.end(), method) != route.methods.end();
}

}  // namespace

struct Router::Impl {
  std::vector<CompiledRoute> routes;  // by rank
  std::vector<uint32_t> rank_of;      // constructor index -> rank
  std::vector<Bucket> buckets;        // [0]: routes without hosts
  EdgeMap hosts;                      // (tag, host or suffix) -> bucket
  bool has_exact_hosts = false;
  bool has_wildcard_hosts = false;
  SegmentTree tree;

  void compile(const std::vector<config::Route>& input);
  uint32_t bucketFor(uint32_t tag, std::string_view key);
  void insert(Bucket& bucket, const config::RouteMatch& match, uint32_t rank);

  // Calls fn(bucket) for each bucket whose hosts cover `host`.
  template <class Fn>
  void forEachBucket(std::string_view host, Fn&& fn) const {
    fn(buckets[0]);
    if (host.empty()) return;
    if (has_exact_hosts) {
      if (const uint32_t b = hosts.find(kExactHostTag, host); b != kNoId) fn(buckets[b]);
    }
    if (has_wildcard_hosts) {
      // Suffixes starting at a dot after at least one character: "*.example.com" covers
      // "a.example.com" and "a.b.example.com", never "example.com".
      for (size_t dot = host.find('.', 1); dot != std::string_view::npos;
           dot = host.find('.', dot + 1)) {
        if (const uint32_t b = hosts.find(kWildcardHostTag, host.substr(dot)); b != kNoId) {
          fn(buckets[b]);
        }
      }
    }
  }

  // Walks every bucket and hands each list of path-compatible routes to `visit`, with
  // `path_regex` telling whether the routes still need their regex checked.
  template <class Visitor>
  void forEachCandidateList(const RequestView& request, Visitor& visit) const {
    forEachBucket(request.host, [&](const Bucket& bucket) {
      auto onList = [&](std::span<const uint32_t> ranks, const Captures& captures) {
        visit(ranks, captures, false);
      };
      tree.walk(bucket.root, request.path, onList);
      const Captures none;
      visit(std::span<const uint32_t>(bucket.regex), none, true);
      visit(std::span<const uint32_t>(bucket.any_path), none, false);
    });
  }

  bool candidateMatches(const CompiledRoute& route, const RequestView& request,
                        bool path_regex) const {
    if (!conditionsMatch(route, request)) return false;
    return !path_regex || RE2::FullMatch(request.path, *route.path_regex);
  }
};

uint32_t Router::Impl::bucketFor(uint32_t tag, std::string_view key) {
  const auto next = static_cast<uint32_t>(buckets.size());
  const uint32_t id = hosts.findOrInsert(tag, key, next);
  if (id == next) buckets.push_back(Bucket{tree.addRoot(), {}, {}});
  return id;
}

void Router::Impl::insert(Bucket& bucket, const config::RouteMatch& match, uint32_t rank) {
  uint32_t node = bucket.root;
  switch (match.path_kind) {
    case PathKind::Any:
      bucket.any_path.push_back(rank);
      return;
    case PathKind::Regex:
      bucket.regex.push_back(rank);
      return;
    case PathKind::Prefix:
      forEachSegment(match.path, [&](std::string_view s) { node = tree.literalChild(node, s); });
      tree.attach(node, ListKind::Prefix, rank);
      return;
    case PathKind::Exact:
    case PathKind::Template: {
      const bool is_template = match.path_kind == PathKind::Template;
      const bool trailing = forEachSegment(match.path, [&](std::string_view s) {
        node =
            is_template && isParamSegment(s) ? tree.paramChild(node) : tree.literalChild(node, s);
      });
      tree.attach(node, trailing ? ListKind::TerminalSlash : ListKind::Terminal, rank);
      return;
    }
  }
}

void Router::Impl::compile(const std::vector<config::Route>& input) {
  const auto n = static_cast<uint32_t>(input.size());
  std::vector<RankKey> keys;
  keys.reserve(n);
  for (uint32_t i = 0; i < n; ++i) keys.push_back(rankKey(input[i], i));
  std::sort(keys.begin(), keys.end());

  routes.resize(n);
  rank_of.resize(n);
  buckets.push_back(Bucket{tree.addRoot(), {}, {}});
  for (uint32_t rank = 0; rank < n; ++rank) {
    const config::Route& route = input[keys[rank].index];
    const config::RouteMatch& m = route.match;
    CompiledRoute& c = routes[rank];
    c.index = keys[rank].index;
    rank_of[c.index] = rank;
    c.kind = m.path_kind;
    if (m.path_kind == PathKind::Prefix) c.path = m.path;
    if (m.path_kind == PathKind::Regex) c.path_regex = compileRegex(m.path, route);
    if (m.path_kind == PathKind::Template) {
      forEachSegment(m.path, [&](std::string_view s) {
        if (isParamSegment(s)) c.param_names.emplace_back(s.substr(1, s.size() - 2));
      });
      if (c.param_names.size() > PathParams::kMax) {
        throw std::invalid_argument("route " + route.name + ": more than 16 path parameters");
      }
    }
    c.methods = m.methods;
    c.headers = compileConditions(m.headers, route);
    c.query = compileConditions(m.query, route);

    c.strip_prefix = route.rewrite.strip_prefix && m.path_kind == PathKind::Prefix;
    c.rewrite_path = !route.rewrite.path.empty();
    for (std::string_view t = route.rewrite.path; !t.empty();) {
      const size_t open = t.find('{');
      const size_t close = open == std::string_view::npos ? open : t.find('}', open);
      if (close == std::string_view::npos) {
        c.rewrite.push_back(RewritePiece{std::string(t), -1});
        break;
      }
      if (open > 0) c.rewrite.push_back(RewritePiece{std::string(t.substr(0, open)), -1});
      const std::string_view name = t.substr(open + 1, close - open - 1);
      const auto it = std::find(c.param_names.begin(), c.param_names.end(), name);
      if (it == c.param_names.end()) {  // not a capture: keep the text (the loader rejects it)
        c.rewrite.push_back(RewritePiece{std::string(t.substr(open, close - open + 1)), -1});
      } else {
        c.rewrite.push_back(RewritePiece{{}, static_cast<int>(it - c.param_names.begin())});
      }
      t.remove_prefix(close + 1);
    }

    if (m.hosts.empty()) {
      insert(buckets[0], m, rank);
      continue;
    }
    for (const std::string& host : m.hosts) {
      const bool wildcard = host.starts_with("*.");
      uint32_t b = 0;
      if (wildcard) {
        has_wildcard_hosts = true;
        b = bucketFor(kWildcardHostTag, std::string_view(host).substr(1));
      } else {
        has_exact_hosts = true;
        b = bucketFor(kExactHostTag, host);
      }
      // A host listed twice puts the route twice in a side list; harmless (same rank), and
      // the trie lists are deduplicated by finish().
      insert(buckets[b], m, rank);
    }
  }
  tree.finish();
}

Router::Router(const std::vector<config::Route>& routes) : impl_(std::make_unique<Impl>()) {
  impl_->compile(routes);
}

Router::~Router() = default;

size_t Router::size() const { return impl_->routes.size(); }

MatchResult Router::match(const RequestView& request) const {
  const Impl& impl = *impl_;
  MatchResult result;
  uint32_t best = kNoId;
  bool method_mismatch = false;

  auto consider = [&](std::span<const uint32_t> ranks, const Captures& captures, bool regex) {
    for (const uint32_t rank : ranks) {
      if (rank >= best) return;  // lists are sorted: nothing better follows
      const CompiledRoute& route = impl.routes[rank];
      if (!impl.candidateMatches(route, request, regex)) continue;
      if (!methodMatches(route, request.method)) {
        method_mismatch = true;
        continue;
      }
      best = rank;
      const auto count = static_cast<uint8_t>(route.param_names.size());
      result.params.count = count;
      for (uint8_t i = 0; i < count; ++i) {
        result.params.names[i] = route.param_names[i];
        result.params.values[i] = captures.values[i];
      }
      return;
    }
  };
  impl.forEachCandidateList(request, consider);

  if (best != kNoId) {
    result.status = MatchStatus::Matched;
    result.route_index = impl.routes[best].index;
    return result;
  }
  result.params.count = 0;
  if (!method_mismatch) return result;

  // 405: the methods of every candidate that failed on the method alone.
  std::vector<std::string_view> methods;
  auto collect = [&](std::span<const uint32_t> ranks, const Captures&, bool regex) {
    for (const uint32_t rank : ranks) {
      const CompiledRoute& route = impl.routes[rank];
      if (!impl.candidateMatches(route, request, regex)) continue;
      methods.insert(methods.end(), route.methods.begin(), route.methods.end());
    }
  };
  impl.forEachCandidateList(request, collect);
  std::sort(methods.begin(), methods.end());
  methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
  result.status = MatchStatus::MethodNotAllowed;
  for (const std::string_view method : methods) {
    if (!result.allow.empty()) result.allow += ", ";
    result.allow += method;
  }
  return result;
}

void Router::rewrite(const MatchResult& result, std::string_view path, std::string& out) const {
  if (result.status != MatchStatus::Matched || result.route_index >= impl_->rank_of.size()) {
    out.append(path);
    return;
  }
  const CompiledRoute& route = impl_->routes[impl_->rank_of[result.route_index]];
  if (route.rewrite_path) {
    for (const RewritePiece& piece : route.rewrite) {
      if (piece.param < 0) {
        out.append(piece.literal);
      } else if (piece.param < result.params.count) {
        out.append(result.params.values[static_cast<size_t>(piece.param)]);
      }
    }
    return;
  }
  if (route.strip_prefix && route.path != "/" && path.starts_with(route.path)) {
    const std::string_view rest = path.substr(route.path.size());
    // Whole segments: "/api" matched "/api" or "/api/..."; what remains keeps its leading '/'.
    out.append(rest.empty() ? std::string_view("/") : rest);
    return;
  }
  out.append(path);
}

}  // namespace portico::router
