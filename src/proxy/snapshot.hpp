#pragma once
// The immutable, compiled form of one config: route matcher, upstream tables with resolved
// addresses, per-route policies. Built on the control thread, shared read-only by all workers
// through shared_ptr<const Snapshot>; a reload builds a new one and workers swap to it between
// requests, while requests in flight finish on the one they started with.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "filters/filter.hpp"
#include "net/socket.hpp"
#include "router/router.hpp"
#include "upstream/maglev.hpp"
#include "upstream/upstream_health.hpp"

namespace portico::auth {
class Authenticator;
}
namespace portico::auth::jwt {
class KeySet;
}
namespace portico::ratelimit {
class Limiter;
}
namespace portico::tls {
class ServerContext;
class ClientContext;
}

namespace portico::proxy {

struct UpstreamRuntime {
  const config::Upstream* config = nullptr;
  std::vector<net::SocketAddress> addresses;  // one per endpoint, resolved at build time
  std::vector<std::string> endpoint_keys;     // "ip:port" as resolved: the worker's pool key
  std::vector<std::string> hosts;             // as written: the name TLS sends and verifies
  std::shared_ptr<const tls::ClientContext> tls;  // null: plain TCP
  upstream::MaglevTable maglev;  // consistent_hash: the endpoint of each key's slot
  // Health checks' verdicts, outlier ejection, the breaker and the retry budget: the process's,
  // kept across reloads when built with a HealthRegistry.
  std::shared_ptr<const upstream::UpstreamHealth> health;
};

struct RouteRuntime {
  const config::Route* config = nullptr;
  std::vector<uint32_t> upstreams;         // indexes into Snapshot::upstreams, one per split entry
  std::vector<uint32_t> cumulative_weight;  // same length; last = total weight
  bool rewrites = false;
  std::vector<uint32_t> auth_providers;  // Authenticator indexes; empty iff auth: public
  filters::FilterFactories filter_factories;  // each request's filters, in route order
  bool answers_preflights = false;  // a CORS preflight is routed as the request it announces
};

struct Snapshot {
  uint64_t version = 0;
  config::Config config;
  std::unique_ptr<router::Router> router;
  std::vector<UpstreamRuntime> upstreams;
  std::vector<RouteRuntime> routes;
  std::unique_ptr<auth::Authenticator> auth;
  // One per listener, null for plain ones. Workers may get newer ones when the files change.
  std::vector<std::shared_ptr<const tls::ServerContext>> tls;
  // Per auth provider index: its jwks_url (empty for others) and the key set fetched so far.
  std::vector<std::string> jwks_urls;
  std::vector<std::shared_ptr<const auth::jwt::KeySet>> jwks;
  std::unique_ptr<ratelimit::Limiter> limiter;
  net::SocketAddress redis_address;  // when config.redis is set

  Snapshot();
  ~Snapshot();

  // Builds a snapshot from a validated config. Errors (a name that does not resolve, ...) are
  // appended to `errors` and nullptr is returned.
  // `fetched_jwks` gives the current key set of a jwks_url (none when absent: validate).
  using JwksLookup =
      std::function<std::shared_ptr<const auth::jwt::KeySet>(const std::string& url)>;
  // `health`: where upstreams' health state lives across reloads (none: a fresh state).
  // `dns`: the addresses a `dns:` upstream's "name:port" resolves to (none yet: no endpoints,
  // its requests get 503); without it (validate) such upstreams have no endpoints.
  using DnsLookup =
      std::function<std::optional<std::vector<net::SocketAddress>>(const std::string& name_port)>;
  static std::shared_ptr<const Snapshot> build(config::Config config, uint64_t version,
                                               std::vector<std::string>& errors,
                                               const JwksLookup& fetched_jwks = {},
                                               upstream::HealthRegistry* health = nullptr,
                                               const DnsLookup& dns = {});
};

}  // namespace portico::proxy
