#include "cli/commands.hpp"

#include <cstdio>

#include "config/loader.hpp"
#include "http/http1_parser.hpp"
#include "http/local_reply.hpp"
#include "http/path.hpp"
#include "proxy/snapshot.hpp"
#include "transcode/catalog.hpp"

namespace portico::cli {
namespace {

std::shared_ptr<const proxy::Snapshot> loadOrPrint(const std::string& path) {
  auto loaded = config::loadConfigFile(path);
  std::vector<std::string> errors;
  for (const auto& e : loaded.errors) errors.push_back(e.format());
  std::shared_ptr<const proxy::Snapshot> snap;
  if (loaded.config) snap = proxy::Snapshot::build(std::move(*loaded.config), 1, errors);
  for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
  if (!errors.empty()) {
    std::fprintf(stderr, "%zu error%s\n", errors.size(), errors.size() == 1 ? "" : "s");
  }
  return snap;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

const char* providerTypeName(config::AuthProvider::Type type) {
  switch (type) {
    case config::AuthProvider::Type::Jwt: return "jwt";
    case config::AuthProvider::Type::ApiKey: return "api_key";
    case config::AuthProvider::Type::Mtls: return "mtls";
    case config::AuthProvider::Type::Basic: return "basic";
    case config::AuthProvider::Type::Introspection: return "oauth2_introspection";
  }
  return "?";
}

std::string keyText(const std::vector<config::RateLimitKeyPart>& key) {
  std::string out;
  for (const auto& part : key) {
    if (!out.empty()) out += ", ";
    switch (part.kind) {
      case config::RateLimitKeyPart::Kind::Ip: out += "ip"; break;
      case config::RateLimitKeyPart::Kind::Consumer: out += "consumer"; break;
      case config::RateLimitKeyPart::Kind::Route: out += "route"; break;
      case config::RateLimitKeyPart::Kind::Header: out += "header:" + part.name; break;
      case config::RateLimitKeyPart::Kind::Claim: out += "claim:" + part.name; break;
    }
  }
  return out;
}

// The route's client address rules, when it has any.
void printIpRules(const config::Route& rc) {
  if (!rc.ip) return;
  auto list = [](const std::vector<config::Cidr>& cidrs) {
    std::string out;
    for (const auto& cidr : cidrs) out += (out.empty() ? "" : ", ") + cidr.text;
    return out;
  };
  std::printf("ip:        ");
  if (!rc.ip->allow.empty()) {
    std::printf("allow [%s]%s", list(rc.ip->allow).c_str(), rc.ip->deny.empty() ? "" : "; ");
  }
  if (!rc.ip->deny.empty()) std::printf("deny [%s] (deny wins)", list(rc.ip->deny).c_str());
  std::printf("\n");
}

// The route's rate limits with their keys and stores, and its concurrency limit.
void printLimits(const config::Route& rc) {
  if (rc.rate_limits.empty() && rc.concurrency_limit == 0) {
    std::printf("limits:    none\n");
    return;
  }
  for (const auto& limit : rc.rate_limits) {
    std::string store = limit.store == config::RateLimit::Store::Redis
                            ? (limit.sync.count() > 0 ? "redis, batched" : "redis")
                            : "local";
    if (limit.from_plan) {
      std::printf("limit:     %s: the consumer's plan, per [%s]\n", limit.name.c_str(),
                  keyText(limit.key).c_str());
      continue;
    }
    std::printf("limit:     %s: %llu per %lld ms, per [%s] (%s%s)\n", limit.name.c_str(),
                static_cast<unsigned long long>(limit.limit),
                static_cast<long long>(limit.window.count()), keyText(limit.key).c_str(),
                store.c_str(), limit.mode == config::RateLimit::Mode::Delay ? ", delay" : "");
  }
  if (rc.concurrency_limit > 0) {
    std::printf("concurrency: at most %u in flight\n", rc.concurrency_limit);
  }
}

}  // namespace

int validateCommand(const std::string& config_path) {
  auto snap = loadOrPrint(config_path);
  if (!snap) return 1;
  std::printf("ok\n");
  return 0;
}

namespace {

bool isGrpcRequest(const http::RequestHead& req) {
  const http::HeaderField* type = http::findHeader(req.headers, "content-type");
  return type != nullptr && http::isGrpcContentType(type->value);
}

// A transcoded route: the RPC a request maps to and the fields it sets; false when none does.
bool printGrpcMapping(const config::GrpcRoute& grpc, const http::RequestHead& req,
                      const std::string& path) {
  auto match = grpc.catalog->match(req.method, path);
  if (!match) {
    std::printf("grpc:      %s: no method maps this request: 404 no_route\n", grpc.service.c_str());
    return false;
  }
  const transcode::HttpRule& rule = *match->rule;
  std::printf("grpc:      %s -> %s (%s %s)%s\n", grpc.service.c_str(),
              match->method->grpc_path.c_str() + 1, rule.verb.c_str(), rule.path.text().c_str(),
              match->method->server_streaming ? ", server streaming" : "");
  transcode::JsonOptions options;
  options.ignore_unknown_query_parameters = grpc.ignore_unknown_query_parameters;
  std::vector<transcode::FieldValue> fields;
  transcode::BoundFields bound;
  std::string error;
  if (!grpc.catalog->bindFields(*match, req.query, options, bound, error, &fields)) {
    std::printf("bindings:  400 bad_request (%s)\n", error.c_str());
    return false;
  }
  std::string listed;
  for (const auto& f : fields) {
    if (!listed.empty()) listed += ", ";
    listed += f.field_path + " = \"" + f.value + "\" (" + (f.from_path ? "path" : "query") + ")";
  }
  std::printf("bindings:  %s\n", listed.empty() ? "none" : listed.c_str());
  const char* body = rule.body == transcode::HttpRule::Body::Whole  ? "the request message (*)"
                     : rule.body == transcode::HttpRule::Body::None ? "none"
                                                                    : rule.body_field.c_str();
  std::printf("body:      %s\n", body);
  std::printf("forwards:  POST %s (application/grpc)\n", match->method->grpc_path.c_str());
  return true;
}

}  // namespace

int explainCommand(const std::string& config_path, const std::string& method,
                   const std::string& url, const std::vector<std::string>& headers) {
  auto snap = loadOrPrint(config_path);
  if (!snap) return 1;
  // Build the request as it would arrive, and read it with the same parser the proxy uses.
  std::string target = url;
  std::string host;
  if (auto scheme = url.find("://"); scheme != std::string::npos) {
    size_t slash = url.find('/', scheme + 3);
    host = url.substr(scheme + 3, slash == std::string::npos ? std::string::npos
                                                             : slash - scheme - 3);
    target = slash == std::string::npos ? "/" : url.substr(slash);
  }
  std::string raw = method + " " + target + " HTTP/1.1\r\n";
  bool has_host = false;
  for (const auto& h : headers) {
    raw += h + "\r\n";
    if (h.size() > 5 && http::equalsIgnoreCase(std::string_view(h).substr(0, 5), "host:")) {
      has_host = true;
    }
  }
  if (!has_host) raw += "Host: " + (host.empty() ? std::string("localhost") : host) + "\r\n";
  raw += "\r\n";
  http::RequestHead req;
  http::ParseError error = http::ParseError::None;
  size_t scanned = 0;
  size_t head_end = 0;
  if (http::findHeadEnd(raw.data(), raw.size(), scanned, head_end, error) !=
          http::ParseStatus::Complete ||
      http::parseRequestHead(raw.data(), head_end, {1 << 20, 1 << 16, 1024}, req, error) !=
          http::ParseStatus::Complete) {
    std::printf("request:   400 bad_request (%s)\n", http::describe(error));
    return 2;
  }
  std::string path;
  if (http::normalizePath(req.path, path) != http::PathError::None) {
    std::printf("request:   400 bad_request (invalid request path)\n");
    return 2;
  }
  std::string host_lc;
  std::string_view h = req.host;
  size_t colon = h.starts_with('[') ? h.find(']') + 1 : h.rfind(':');
  h = h.substr(0, colon == std::string_view::npos ? h.size() : colon);
  for (char c : h) host_lc.push_back(http::asciiLower(c));

  std::printf("request:   %s %s (host %s)\n", method.c_str(), path.c_str(), host_lc.c_str());
  router::RequestView view{req.method, host_lc, path, req.query, req.headers};
  auto match = snap->router->match(view);
  if (match.status == router::MatchStatus::NotFound) {
    std::printf("route:     none: 404 no_route\n");
    return 3;
  }
  if (match.status == router::MatchStatus::MethodNotAllowed) {
    std::printf("route:     none for this method: 405 method_not_allowed (Allow: %s)\n",
                match.allow.c_str());
    return 3;
  }
  const auto& route = snap->routes[match.route_index];
  const auto& rc = *route.config;
  std::printf("route:     %s (priority %d, %s:%d)\n", rc.name.c_str(), rc.priority,
              snap->config.file.c_str(), rc.pos.line);
  for (uint8_t i = 0; i < match.params.count; ++i) {
    std::printf("param:     %.*s = %.*s\n", static_cast<int>(match.params.names[i].size()),
                match.params.names[i].data(), static_cast<int>(match.params.values[i].size()),
                match.params.values[i].data());
  }
  if (rc.grpc && !isGrpcRequest(req)) {
    if (!printGrpcMapping(*rc.grpc, req, path)) return 3;
  } else {
    std::string forward;
    snap->router->rewrite(match, path, forward);
    if (!req.query.empty()) forward += "?" + std::string(req.query);
    std::printf("forwards:  %s %s\n", method.c_str(), forward.c_str());
  }
  std::printf("auth:      %s\n", rc.auth_public ? "public" : ("any of " + joined(rc.auth)).c_str());
  for (const auto& name : rc.auth) {
    if (auto it = snap->config.auth_providers.find(name); it != snap->config.auth_providers.end()) {
      std::printf("provider:  %s (%s)\n", name.c_str(), providerTypeName(it->second.type));
    }
  }
  if (rc.authorize) {
    std::string rules;
    if (!rc.authorize->scopes.empty()) rules += "scopes [" + joined(rc.authorize->scopes) + "] ";
    if (!rc.authorize->groups.empty()) rules += "groups [" + joined(rc.authorize->groups) + "] ";
    for (const auto& [claim, value] : rc.authorize->claims) rules += claim + "=" + value + " ";
    std::printf("authorize: %s\n", rules.c_str());
  }
  for (size_t i = 0; i < route.upstreams.size(); ++i) {
    const auto& up = snap->upstreams[route.upstreams[i]];
    uint32_t weight = route.cumulative_weight[i] - (i ? route.cumulative_weight[i - 1] : 0);
    std::string where = up.config->builtin == config::Upstream::Builtin::Echo
                            ? std::string("builtin echo")
                            : joined(up.endpoint_keys);
    std::printf("upstream:  %s (weight %u/%u): %s\n", up.config->name.c_str(), weight,
                route.cumulative_weight.back(), where.c_str());
  }
  for (const auto& [name, value] : rc.request_headers.set) {
    std::printf("request header set:     %s: %s\n", name.c_str(), value.c_str());
  }
  if (!rc.request_headers.remove.empty()) {
    std::printf("request header remove:  %s\n", joined(rc.request_headers.remove).c_str());
  }
  for (const auto& [name, value] : rc.response_headers.set) {
    std::printf("response header set:    %s: %s\n", name.c_str(), value.c_str());
  }
  if (!rc.response_headers.remove.empty()) {
    std::printf("response header remove: %s\n", joined(rc.response_headers.remove).c_str());
  }
  if (rc.timeout) std::printf("timeout:   %lld ms\n", static_cast<long long>(rc.timeout->count()));
  printIpRules(rc);
  printLimits(rc);
  return 0;
}

}  // namespace portico::cli
