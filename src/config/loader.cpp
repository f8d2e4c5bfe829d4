// The top level of the config and its global sections: workers, listeners, admin, access_log,
// upstreams. Routes are in loader_routes.cpp. Each parser fills the model's defaults in place
// and reports problems through the Context; nothing here throws on purpose, and the public
// entry points catch whatever a dependency might throw.

#include "config/loader.hpp"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "config/yaml_tree.hpp"
#include "filters/rate_limit/config.hpp"

namespace portico::config {
namespace detail {
namespace {

constexpr std::string_view kTopKeys[] = {
    "workers",   "drain_timeout", "listeners",      "admin",         "access_log",
    "upstreams", "consumers",     "auth_providers", "routes",        "redis",
    "plans",     "metrics",       "tracing",        "dns_resolvers", "grpc_services"};
constexpr std::string_view kListenerKeys[] = {
    "name", "address", "http2", "tls", "limits", "trusted_proxies", "headers_with_underscores",
    "path_parameters", "lowercase_paths", "limit_ipv6_prefix"};
constexpr std::string_view kUnderscoreActions[] = {"drop", "reject", "allow"};
constexpr std::string_view kPathParameterActions[] = {"strip", "reject"};
constexpr std::string_view kLimitsKeys[] = {
    "max_header_bytes", "max_uri_bytes",   "max_body_bytes",
    "header_timeout",   "idle_timeout",    "max_connections", "http2_max_concurrent_streams",
    "http2_max_streams_per_worker"};
constexpr std::string_view kAdminKeys[] = {"address", "token", "metrics_token"};
constexpr std::string_view kUpstreamKeys[] = {
    "builtin", "endpoints",    "protocol", "load_balancing",  "hash_on", "timeouts", "pool",
    "tls",     "health_check", "outlier",  "circuit_breaker", "retry",   "dns",      "dns_refresh"};
constexpr std::string_view kTimeoutKeys[] = {"connect", "request", "idle"};
constexpr std::string_view kPoolKeys[] = {"max_connections", "max_idle"};

const KeySet kTop{kTopKeys, {}};
const KeySet kListener{kListenerKeys, {}};
const KeySet kLimits{kLimitsKeys, {}};
const KeySet kAdmin{kAdminKeys, {}};
const KeySet kUpstream{kUpstreamKeys, {}};
const KeySet kTimeouts{kTimeoutKeys, {}};
const KeySet kPool{kPoolKeys, {}};

constexpr int64_t kMaxWorkers = 256;
constexpr int64_t kMaxConnections = 10'000'000;
constexpr int64_t kMaxPoolConnections = 1'000'000;
constexpr int64_t kMaxStreams = 10'000;

void parseLimits(Context& ctx, const Item& item, Limits& limits) {
  MapFields map = ctx.readMap(item, "limits", &kLimits);
  for (const Field& f : map.fields) {
    if (f.key == "max_header_bytes") {
      limits.max_header_bytes = ctx.size(f.item(), true).value_or(limits.max_header_bytes);
    } else if (f.key == "max_uri_bytes") {
      limits.max_uri_bytes = ctx.size(f.item(), true).value_or(limits.max_uri_bytes);
    } else if (f.key == "max_body_bytes") {
      // 0 is meaningful here: requests with a body are refused.
      limits.max_body_bytes = ctx.size(f.item(), false).value_or(limits.max_body_bytes);
    } else if (f.key == "header_timeout") {
      limits.header_timeout = ctx.duration(f.item(), true).value_or(limits.header_timeout);
    } else if (f.key == "idle_timeout") {
      limits.idle_timeout = ctx.duration(f.item(), true).value_or(limits.idle_timeout);
    } else if (f.key == "max_connections") {
      if (auto n = ctx.integer(f.item(), 1, kMaxConnections)) {
        limits.max_connections = static_cast<uint64_t>(*n);
      }
    } else if (f.key == "http2_max_concurrent_streams") {
      if (auto n = ctx.integer(f.item(), 1, kMaxStreams)) {
        limits.http2_max_concurrent_streams = static_cast<uint32_t>(*n);
      }
    } else if (f.key == "http2_max_streams_per_worker") {
      if (auto n = ctx.integer(f.item(), 1, kMaxConnections)) {
        limits.http2_max_streams_per_worker = static_cast<uint64_t>(*n);
      }
    }
  }
}

void parseTrustedProxies(Context& ctx, const Item& item, std::vector<Cidr>& out) {
  for (const Item& entry : ctx.readList(item, false)) {
    auto text = ctx.text(entry);
    if (!text) {
      continue;
    }
    Cidr cidr;
    if (auto problem = parseCidr(*text, cidr)) {
      ctx.error(ctx.pos(entry), *problem);
    } else {
      out.push_back(std::move(cidr));
    }
  }
}

// Listener addresses seen so far, to report a second listener (or the admin API) on one.
struct AddressOwner {
  std::string listener;
};

void parseListeners(Context& ctx, const Item& item, std::vector<Listener>& out,
                    std::unordered_map<std::string, AddressOwner>& addresses) {
  std::vector<Item> entries = ctx.readList(item, true);
  std::unordered_map<std::string, Position> names;
  for (size_t i = 0; i < entries.size(); ++i) {
    MapFields map = ctx.readMap(entries[i], "listener", &kListener);
    if (!map.valid) {
      continue;
    }
    Listener listener;
    listener.name = "listener-" + std::to_string(i + 1);
    Position name_pos = map.pos;
    if (const Field* f = map.find("name")) {
      name_pos = ctx.pos(f->item());
      if (auto name = ctx.text(f->item())) {
        if (name->empty()) {
          ctx.error(name_pos, "\"name\" must not be empty");
        }
        listener.name = *name;
      }
    }
    if (!names.emplace(listener.name, name_pos).second) {
      ctx.error(name_pos, "duplicate listener name " + quote(listener.name));
    }
    Position address_pos = map.pos;
    std::string canonical = "0.0.0.0:" + std::to_string(listener.port);
    bool address_ok = true;
    if (const Field* f = map.find("address")) {
      address_pos = ctx.pos(f->item());
      address_ok = false;
      if (auto text = ctx.text(f->item())) {
        HostPort hp;
        if (auto problem = parseListenAddress(*text, hp)) {
          ctx.error(address_pos, *problem);
        } else {
          listener.host = hp.host;
          listener.port = hp.port;
          canonical = hp.canonical;
          address_ok = true;
        }
      }
    }
    if (address_ok) {
      auto [it, inserted] = addresses.emplace(canonical, AddressOwner{listener.name});
      if (!inserted) {
        ctx.error(address_pos, "duplicate listener address " + quote(canonical) +
                                   " (also used by listener " + quote(it->second.listener) + ")");
      }
    }
    if (const Field* f = map.find("http2")) {
      listener.http2 = ctx.boolean(f->item()).value_or(false);
    }
    if (const Field* f = map.find("tls")) {
      parseListenerTls(ctx, f->item(), listener.tls.emplace());
    }
    if (const Field* f = map.find("limits")) {
      parseLimits(ctx, f->item(), listener.limits);
    }
    if (const Field* f = map.find("trusted_proxies")) {
      parseTrustedProxies(ctx, f->item(), listener.trusted_proxies);
    }
    if (const Field* f = map.find("headers_with_underscores")) {
      if (auto index = ctx.choice(f->item(), kUnderscoreActions)) {
        listener.headers_with_underscores = static_cast<Listener::Underscores>(*index);
      }
    }
    if (const Field* f = map.find("path_parameters")) {
      if (auto index = ctx.choice(f->item(), kPathParameterActions)) {
        listener.path_parameters = static_cast<Listener::PathParameters>(*index);
      }
    }
    if (const Field* f = map.find("lowercase_paths")) {
      listener.lowercase_paths = ctx.boolean(f->item()).value_or(false);
    }
    if (const Field* f = map.find("limit_ipv6_prefix")) {
      if (auto bits = ctx.integer(f->item(), 32, 128)) {
        listener.limit_ipv6_prefix = static_cast<uint8_t>(*bits);
      }
    }
    out.push_back(std::move(listener));
  }
}

void parseAdmin(Context& ctx, const Item& item, Admin& admin,
                const std::unordered_map<std::string, AddressOwner>& addresses) {
  MapFields map = ctx.readMap(item, "admin", &kAdmin);
  if (!map.valid) {
    return;
  }
  admin.enabled = true;
  std::string canonical = admin.host + ":" + std::to_string(admin.port);
  Position at = map.pos;
  if (const Field* f = map.find("address")) {
    at = ctx.pos(f->item());
    canonical.clear();
    if (auto text = ctx.text(f->item())) {
      HostPort hp;
      if (auto problem = parseListenAddress(*text, hp)) {
        ctx.error(at, *problem);
      } else {
        admin.host = hp.host;
        admin.port = hp.port;
        canonical = hp.canonical;
      }
    }
  }
  // Checked for the default address too: both sockets could not be bound.
  if (auto it = addresses.find(canonical); it != addresses.end()) {
    ctx.error(at, "admin address " + quote(canonical) + " is also used by listener " +
                      quote(it->second.listener));
  }
  if (const Field* f = map.find("token")) {
    if (auto token = ctx.text(f->item())) {
      admin.token = *token;
    }
  }
  if (const Field* f = map.find("metrics_token")) {
    if (auto token = ctx.text(f->item())) admin.metrics_token = *token;
  }
  // Reload and the config's routes for anyone who can reach the port: not beyond this host
  // without a token (review L2).
  const bool loopback = admin.host.starts_with("127.") || admin.host == "::1";
  if (!loopback && admin.token.empty()) {
    ctx.error(at, "an admin address beyond the loopback (" + quote(admin.host) +
                      ") needs a \"token\"");
  }
}

void parseUpstreamBody(Context& ctx, const Field& entry, Upstream& up) {
  MapFields map = ctx.readMap(entry.item(), "upstream " + quote(up.name), &kUpstream);
  if (!map.valid) {
    return;
  }
  const Field* builtin = map.find("builtin");
  const Field* endpoints = map.find("endpoints");
  if (builtin != nullptr) {
    static constexpr std::string_view kBuiltins[] = {"echo"};
    if (ctx.choice(builtin->item(), kBuiltins)) {
      up.builtin = Upstream::Builtin::Echo;
    }
    if (endpoints != nullptr) {
      ctx.error(endpoints->key_pos,
                "\"endpoints\" cannot be used with \"builtin\" (a builtin "
                "upstream answers by itself)");
    }
  } else if (endpoints != nullptr) {
    parseEndpoints(ctx, endpoints->item(), up.name, up.endpoints);
  } else if (map.find("dns") == nullptr) {
    ctx.error(entry.key_pos,
              "upstream " + quote(up.name) + " needs \"endpoints\", \"dns\" or \"builtin\"");
  }
  parseDns(ctx, map, up);
  if (const Field* f = map.find("protocol")) {
    if (auto value = ctx.text(f->item())) {
      if (*value == "grpc") {
        up.protocol = Upstream::Protocol::Grpc;
      } else if (*value == "http2") {
        up.protocol = Upstream::Protocol::Http2;
      } else if (*value != "http1") {
        ctx.error(ctx.pos(f->item()), "invalid value " + quote(*value) +
                                          " for \"protocol\" (use http1, http2 or grpc)");
      }
    }
  }
  parseBalancing(ctx, map, up);
  parseResilience(ctx, map, up);
  if (const Field* f = map.find("timeouts")) {
    MapFields timeouts = ctx.readMap(f->item(), "timeouts", &kTimeouts);
    for (const Field& t : timeouts.fields) {
      Duration& target = t.key == "connect"   ? up.timeouts.connect
                         : t.key == "request" ? up.timeouts.request
                                              : up.timeouts.idle;
      target = ctx.duration(t.item(), true).value_or(target);
    }
  }
  if (const Field* f = map.find("tls")) {
    parseUpstreamTls(ctx, f->item(), up.tls.emplace());
    if (builtin != nullptr) {
      ctx.error(f->key_pos, "\"tls\" cannot be used with \"builtin\"");
    }
  }
  if (const Field* f = map.find("pool")) {
    MapFields pool = ctx.readMap(f->item(), "pool", &kPool);
    const Field* max_conn = pool.find("max_connections");
    const Field* max_idle = pool.find("max_idle");
    bool ok = true;
    if (max_conn != nullptr) {
      auto n = ctx.integer(max_conn->item(), 1, kMaxPoolConnections);
      ok = ok && n.has_value();
      up.max_connections = static_cast<uint32_t>(n.value_or(up.max_connections));
    }
    if (max_idle != nullptr) {
      auto n = ctx.integer(max_idle->item(), 0, kMaxPoolConnections);
      ok = ok && n.has_value();
      up.max_idle = static_cast<uint32_t>(n.value_or(up.max_idle));
    }
    if (ok && up.max_idle > up.max_connections) {
      Position at = max_idle != nullptr ? ctx.pos(max_idle->item()) : ctx.pos(max_conn->item());
      ctx.error(at, "\"max_idle\" (" + std::to_string(up.max_idle) +
                        ") must not exceed \"max_connections\" (" +
                        std::to_string(up.max_connections) + ")");
    }
  }
}

void parseUpstreams(Context& ctx, const Item& item, std::map<std::string, Upstream>& out) {
  MapFields map = ctx.readMap(item, "upstreams", nullptr);
  for (const Field& entry : map.fields) {
    Upstream up;
    up.name = std::string(entry.key);
    if (!isPlainName(up.name)) {
      // Names appear in metrics labels and logs; keep them plain.
      ctx.error(entry.key_pos, "invalid upstream name " + quote(up.name) +
                                   " (use letters, digits, '_', '-' and '.')");
    }
    parseUpstreamBody(ctx, entry, up);
    out.emplace(up.name, std::move(up));
  }
}

void parseWorkers(Context& ctx, const Item& item, unsigned& workers) {
  auto text = ctx.text(item);
  if (!text) {
    return;
  }
  if (*text == "auto") {
    workers = 0;
    return;
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || ptr != text->data() + text->size() || value < 1 || value > kMaxWorkers) {
    ctx.error(ctx.pos(item), "invalid value " + quote(*text) +
                                 " for \"workers\" (use auto or a whole number from 1 to " +
                                 std::to_string(kMaxWorkers) + ")");
    return;
  }
  workers = value;
}

Config buildConfig(Context& ctx, NodeId root) {
  Config config;
  const YamlNode& root_node = ctx.node(root);
  if (root_node.kind == YamlNode::Kind::Null) {
    ctx.error(Position{1, 1}, "the config file is empty");
    return config;
  }
  if (root_node.kind != YamlNode::Kind::Map) {
    ctx.error(root_node.pos,
              "the config must be a map of keys (listeners, upstreams, routes, "
              "...), got " +
                  std::string(root_node.kind == YamlNode::Kind::Sequence ? "a list" : "a string"));
    return config;
  }
  MapFields top = ctx.readMap(Item{root, "", false}, "", &kTop);
  ctx.requireKey(top, "listeners", "");
  ctx.requireKey(top, "routes", "");
  if (const Field* f = top.find("workers")) {
    parseWorkers(ctx, f->item(), config.workers);
  }
  if (const Field* f = top.find("drain_timeout")) {
    config.drain_timeout = ctx.duration(f->item(), false).value_or(config.drain_timeout);
  }
  std::unordered_map<std::string, AddressOwner> addresses;
  if (const Field* f = top.find("listeners")) {
    parseListeners(ctx, f->item(), config.listeners, addresses);
  }
  if (const Field* f = top.find("admin")) {
    parseAdmin(ctx, f->item(), config.admin, addresses);
  }
  if (const Field* f = top.find("access_log")) {
    parseAccessLog(ctx, f->item(), config.access_log);
  }
  if (const Field* f = top.find("metrics")) {
    parseMetrics(ctx, f->item(), config.metrics);
  }
  if (const Field* f = top.find("tracing")) {
    parseTracing(ctx, f->item(), config.tracing);
  }
  if (const Field* f = top.find("upstreams")) {
    parseUpstreams(ctx, f->item(), config.upstreams);
  }
  if (const Field* f = top.find("dns_resolvers")) {
    parseDnsResolvers(ctx, f->item(), config.dns_resolvers);
  }
  if (const Field* f = top.find("grpc_services")) {
    parseGrpcServices(ctx, f->item(), config);
  }
  if (const Field* f = top.find("auth_providers")) {
    config.auth_providers = parseAuthProviders(ctx, f->item());
  }
  if (const Field* f = top.find("redis")) {
    parseRedis(ctx, f->item(), config.redis);
  }
  if (const Field* f = top.find("plans")) {
    config.plans = filters::parsePlans(ctx, f->item(), config);
  }
  if (const Field* f = top.find("consumers")) {
    config.consumers = parseConsumers(ctx, f->item(), config.plans);
  }
  if (const Field* f = top.find("routes")) {
    config.routes = parseRoutes(ctx, f->item(), config);
  }
  return config;
}

}  // namespace

bool isPlainName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace detail

std::string ConfigError::format() const {
  if (line <= 0) {
    return file + ": " + message;
  }
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

LoadResult loadConfigString(std::string_view yaml, const std::string& file_name,
                            const EnvLookup& env) {
  LoadResult result;
  try {
    detail::YamlParseResult parsed = detail::parseYaml(yaml);
    if (parsed.error) {
      result.errors.push_back(ConfigError{file_name, parsed.error->pos.line,
                                          parsed.error->pos.column, parsed.error->message});
      return result;
    }
    if (!parsed.document) {
      result.errors.push_back(ConfigError{file_name, 1, 1, "the config file is empty"});
      return result;
    }
    detail::Context ctx(*parsed.document, file_name, env);
    Config config = detail::buildConfig(ctx, parsed.document->root);
    result.errors = ctx.takeErrors();
    if (result.errors.empty()) {
      config.file = file_name;
      config.redacted_json = detail::redactedJson(*parsed.document, env);
      result.config = std::move(config);
    }
  } catch (const std::exception& e) {
    // Only allocation failure or a throwing EnvLookup can get here.
    result.config.reset();
    result.errors.push_back(
        ConfigError{file_name, 0, 0, std::string("cannot load the config: ") + e.what()});
  } catch (...) {
    result.config.reset();
    result.errors.push_back(ConfigError{file_name, 0, 0, "cannot load the config"});
  }
  return result;
}

LoadResult loadConfigFile(const std::string& path, const EnvLookup& env) {
  auto fail = [&path](const char* what) {
    LoadResult result;
    result.errors.push_back(
        ConfigError{path, 0, 0, std::string(what) + ": " + std::strerror(errno)});
    return result;
  };
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    return fail("cannot open the config file");
  }
  std::string text;
  char buffer[64 * 1024];
  size_t n = 0;
  try {
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
      text.append(buffer, n);
    }
  } catch (const std::exception&) {
    errno = ENOMEM;
    return fail("cannot read the config file");
  }
  // fopen() accepts a directory; the read then fails with EISDIR.
  if (std::ferror(file.get())) {
    return fail("cannot read the config file");
  }
  return loadConfigString(text, path, env);
}

}  // namespace portico::config
