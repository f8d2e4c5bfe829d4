#include "proxy/snapshot.hpp"

#include <algorithm>
#include <unordered_map>

#include "auth/authenticator.hpp"
#include "filters/chain.hpp"
#include "ratelimit/limiter.hpp"
#include "tls/client_context.hpp"
#include "tls/server_context.hpp"

namespace portico::proxy {
namespace {

// A `dns:` upstream's endpoints are the addresses its name resolved to, each "ip:port".
void resolveDnsEndpoints(config::Config& config, const Snapshot::DnsLookup& dns) {
  for (auto& [name, upstream] : config.upstreams) {
    if (!upstream.dns) continue;
    upstream.endpoints.clear();
    const auto addresses = dns(upstream.dns->text).value_or(std::vector<net::SocketAddress>{});
    for (const net::SocketAddress& address : addresses) {
      char host[64];
      address.formatHost(host, sizeof host);
      config::Endpoint& endpoint = upstream.endpoints.emplace_back();
      endpoint.host = host;
      endpoint.port = upstream.dns->port;
      endpoint.text = address.family() == AF_INET6 ? "[" + endpoint.host + "]" : endpoint.host;
      endpoint.text += ":" + std::to_string(endpoint.port);
    }
  }
}

}  // namespace

Snapshot::Snapshot() = default;
Snapshot::~Snapshot() = default;

std::shared_ptr<const Snapshot> Snapshot::build(config::Config config, uint64_t version,
                                                std::vector<std::string>& errors,
                                                const JwksLookup& fetched_jwks,
                                                upstream::HealthRegistry* health,
                                                const DnsLookup& dns) {
  auto snap = std::make_shared<Snapshot>();
  snap->version = version;
  snap->config = std::move(config);
  if (dns) resolveDnsEndpoints(snap->config, dns);
  const config::Config& cfg = snap->config;

  snap->auth = std::make_unique<auth::Authenticator>(cfg, errors);
  snap->limiter = std::make_unique<ratelimit::Limiter>(cfg);
  snap->jwks_urls.resize(snap->auth->providerCount());
  snap->jwks.resize(snap->auth->providerCount());
  for (const auto& [name, provider] : cfg.auth_providers) {
    int index = snap->auth->providerIndex(name);
    if (index < 0 || provider.jwt.jwks_url.empty()) continue;
    snap->jwks_urls[index] = provider.jwt.jwks_url;
    if (fetched_jwks) snap->jwks[index] = fetched_jwks(provider.jwt.jwks_url);
  }
  for (const auto& listener : cfg.listeners) {
    auto& tls = snap->tls.emplace_back();
    if (listener.tls) {
      tls = tls::ServerContext::build(*listener.tls, listener.http2, listener.name, errors);
    }
  }
  std::unordered_map<std::string, uint32_t> upstream_index;
  for (const auto& [name, upstream] : cfg.upstreams) {
    UpstreamRuntime rt;
    rt.config = &upstream;
    if (upstream.tls) {
      rt.tls = tls::ClientContext::build(*upstream.tls, name, upstream.speaksHttp2(), errors);
    }
    for (const auto& ep : upstream.endpoints) {
      net::SocketAddress addr;
      std::string error;
      if (!net::resolveAddress(ep.host, ep.port, addr, error)) {
        errors.push_back("upstream \"" + name + "\": cannot resolve \"" + ep.text + "\": " + error);
        continue;
      }
      char host[64];
      addr.formatHost(host, sizeof host);
      std::string key = addr.family() == AF_INET6 ? "[" + std::string(host) + "]" : host;
      key += ":" + std::to_string(ep.port);
      // TLS connections are set up for one upstream's trust and name: pooled apart.
      if (upstream.tls) key += " tls " + name;
      if (upstream.speaksHttp2()) key += " h2";
      rt.endpoint_keys.push_back(std::move(key));
      rt.addresses.push_back(addr);
      rt.hosts.push_back(upstream.dns ? upstream.dns->host : ep.host);  // TLS names the name
    }
    if (upstream.balancing == config::Upstream::Balancing::ConsistentHash) {
      std::vector<std::string> names;
      std::vector<uint32_t> weights;
      for (const auto& ep : upstream.endpoints) {
        names.push_back(ep.text);
        weights.push_back(ep.weight);
      }
      rt.maglev = upstream::MaglevTable(names, weights);
    }
    upstream::HealthRegistry fresh;
    rt.health = (health != nullptr ? *health : fresh).adopt(name, rt.endpoint_keys);
    upstream_index.emplace(name, static_cast<uint32_t>(snap->upstreams.size()));
    snap->upstreams.push_back(std::move(rt));
  }

  for (const auto& route : cfg.routes) {
    RouteRuntime rt;
    rt.config = &route;
    uint32_t total = 0;
    for (const auto& split : route.split) {
      auto it = upstream_index.find(split.upstream);
      if (it == upstream_index.end()) {
        errors.push_back("route \"" + route.name + "\": unknown upstream \"" + split.upstream +
                         "\"");
        continue;
      }
      total += split.weight;
      rt.upstreams.push_back(it->second);
      rt.cumulative_weight.push_back(total);
    }
    rt.rewrites = route.rewrite.strip_prefix || !route.rewrite.path.empty();
    for (const auto& name : route.auth) {
      int index = snap->auth->providerIndex(name);
      if (index < 0) {
        errors.push_back("route \"" + route.name + "\": unknown auth provider \"" + name + "\"");
        continue;
      }
      rt.auth_providers.push_back(static_cast<uint32_t>(index));
    }
    // Default deny, checked again here so no path can build a route that skips auth.
    if (!route.auth_public && rt.auth_providers.empty()) {
      errors.push_back("route \"" + route.name + "\" has no auth decision");
    }
    rt.filter_factories = filters::buildFilterFactories(
        route, {*snap->auth, rt.auth_providers, *snap->limiter,
                static_cast<uint32_t>(snap->routes.size()), cfg.redis ? &*cfg.redis : nullptr});
    rt.answers_preflights = filters::answersPreflights(route);
    snap->routes.push_back(std::move(rt));
  }
  if (cfg.redis) {
    std::string error;
    if (!net::resolveAddress(cfg.redis->host, cfg.redis->port, snap->redis_address, error)) {
      errors.push_back("redis: cannot resolve \"" + cfg.redis->address + "\": " + error);
    }
  }
  if (!errors.empty()) return nullptr;
  snap->router = std::make_unique<router::Router>(cfg.routes);
  return snap;
}

}  // namespace portico::proxy
