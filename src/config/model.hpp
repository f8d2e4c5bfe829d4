#pragma once
// The parsed, validated configuration: plain values, no behaviour. The loader (loader.hpp) builds
// it from YAML and guarantees every invariant stated in the comments below; everything downstream
// (router compiler, snapshot, workers) may rely on them without checking again.

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/cidr.hpp"
#include "filters/cors/config.hpp"
#include "filters/headers/config.hpp"
#include "filters/ip_rules/config.hpp"

namespace portico::transcode {
class Catalog;
}

namespace portico::config {

using Duration = std::chrono::milliseconds;

struct SourcePos {
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based
};

struct Limits {
  uint64_t max_header_bytes = 32 * 1024;
  uint64_t max_uri_bytes = 8 * 1024;
  uint64_t max_body_bytes = 10 * 1024 * 1024;
  Duration header_timeout{10'000};
  Duration idle_timeout{60'000};
  uint64_t max_connections = 100'000;
  uint32_t http2_max_concurrent_streams = 100;  // advertised in SETTINGS; more are refused
  // Streams open at once on one worker over all its HTTP/2 connections; more are refused.
  uint64_t http2_max_streams_per_worker = 16'384;
};

// One certificate of a TLS listener. Paths are absolute (resolved against the config's folder)
// and the files were readable at load; whether they hold a matching key and certificate is
// checked when the snapshot is built, and again each time they change on disk.
struct TlsCertificate {
  std::string cert_path;             // PEM: the leaf first, then its chain
  std::string key_path;              // PEM private key
  std::vector<std::string> sni;      // lowercased; "*.example.com" wildcards; empty = the SANs
};

struct ListenerTls {
  enum class Version : uint8_t { Tls12, Tls13 };
  enum class ClientAuth : uint8_t { None, Optional, Required };
  std::vector<TlsCertificate> certificates;  // at least one; the first is the default
  Version min_version = Version::Tls12;
  std::string client_ca_path;                // set iff client_auth != None
  ClientAuth client_auth = ClientAuth::None;
};

struct Listener {
  std::string name;
  std::string host = "0.0.0.0";  // numeric IPv4/IPv6 address
  uint16_t port = 8080;
  bool http2 = false;  // h2c (prior knowledge, Upgrade) on plain listeners, ALPN h2 with TLS
  std::optional<ListenerTls> tls;
  Limits limits;
  std::vector<Cidr> trusted_proxies;
  // Header names with '_': CGI-style servers read X_Consumer_Name as X-Consumer-Name, so a
  // client could choose an identity the gateway never checked (review H4). Envoy's and NGINX's
  // default is to drop them too.
  enum class Underscores : uint8_t { Drop, Reject, Allow };
  Underscores headers_with_underscores = Underscores::Drop;
  // `;` path parameters: servlet containers drop them before resolving dot segments, so
  // "/admin;x/users" is "/admin/users" to them (review H3). Strip: removed before routing and
  // forwarding (what the router saw is what the upstream gets); Reject: 400.
  enum class PathParameters : uint8_t { Strip, Reject };
  PathParameters path_parameters = PathParameters::Strip;
  // For upstreams that ignore case in paths (IIS, ASP.NET): paths are lowercased before routing
  // and forwarding, so "/ADMIN" meets the routes of "/admin".
  bool lowercase_paths = false;
  // `key: ip` limits count IPv6 clients per prefix of this length (review M6).
  uint8_t limit_ipv6_prefix = 64;
};

struct Admin {
  bool enabled = false;
  std::string host = "127.0.0.1";
  uint16_t port = 9901;
  std::string token;  // empty = no token required
  std::string metrics_token;  // also opens GET /metrics (a scraper's token), when set
};

struct Metrics {
  bool enabled = true;
};

struct Tracing {
  bool propagate = true;       // traceparent read from clients and sent upstream
  std::string otlp_endpoint;   // http://host:port/path; empty: no export
  double sample = 0.01;        // new traces exported, 0..1
  std::string service_name = "portico";
  Duration export_interval{1'000};
  uint32_t queue_size = 2048;  // spans waiting for export; more are dropped
};

struct AccessLog {
  enum class Format : uint8_t { Json, Text };
  enum class Field : uint8_t {
    Time, RequestId, TraceId, Client, Method, Path, Route, Upstream, Endpoint, Status, BytesIn,
    BytesOut, DurationMs, UpstreamMs, UpstreamConnectMs, UpstreamFirstByteMs, Consumer
  };
  static constexpr std::string_view kFieldNames[] = {
      "time",      "request_id", "trace_id", "client",      "method",      "path",
      "route",     "upstream",   "endpoint", "status",      "bytes_in",    "bytes_out",
      "duration_ms", "upstream_ms", "upstream_connect_ms", "upstream_first_byte_ms", "consumer"};
  std::string path = "stdout";  // stdout | stderr | off | a file path
  Format format = Format::Json;
  double sample = 1.0;  // 0..1
  std::vector<Field> fields;  // in the order written; empty: the default set
  bool enabled() const { return path != "off"; }
};

struct Endpoint {
  std::string host;  // as written: numeric address or name resolved at load
  uint16_t port = 0;
  std::string text;  // "host:port" as written
  uint32_t weight = 1;  // 0..1000; 0: no traffic
};

// What consistent_hash hashes: the client address, the consumer, a header or a cookie (the
// client address when the request has none).
struct HashOn {
  enum class Kind : uint8_t { Ip, Consumer, Header, Cookie };
  Kind kind = Kind::Ip;
  std::string name;  // Header: lowercased; Cookie: as written
};

struct UpstreamTimeouts {
  Duration connect{1'000};
  Duration request{15'000};  // from the request being sent to the complete response head
  Duration idle{60'000};     // a pooled connection unused this long is closed
};

// TLS to an upstream. Paths are absolute and were readable at load.
struct UpstreamTls {
  bool verify = true;      // the certificate must chain to `ca` and name the host
  std::string ca_path;     // empty = the system's trust store
  std::string sni;         // the name sent and verified; empty = the endpoint's host
  std::string cert_path;   // a client certificate, with key_path (both or neither)
  std::string key_path;
};

// Active health checks (docs/resilience.md): run once per process, on the control thread.
struct HealthCheck {
  std::string path = "/";  // target of the GET, query included
  Duration interval{5'000};
  Duration timeout{1'000};         // <= interval
  uint32_t healthy = 2;            // passes in a row that bring an endpoint back
  uint32_t unhealthy = 3;          // failures in a row that take it out
  std::vector<uint16_t> statuses;  // statuses that pass; empty = any 2xx
  std::string host;                // Host of the check; empty = the endpoint as written
};

// Passive outlier ejection: failures seen by real requests take an endpoint out for a while.
struct OutlierDetection {
  uint32_t consecutive_failures = 5;
  Duration eject_for{30'000};  // the first ejection; the n-th in a row lasts n times this
};

struct CircuitBreaker {
  double failure_rate = 0.5;  // (0, 1]
  Duration window{10'000};
  uint32_t min_requests = 20;
  Duration open_for{30'000};
  uint32_t half_open_requests = 3;
};

struct RetryPolicy {
  uint32_t attempts = 2;  // every try, the first included
  bool on_connect_failure = true;
  bool on_reset = true;
  bool on_timeout = true;
  std::vector<uint16_t> statuses{502, 503, 504};  // responses held back and retried
  Duration backoff_base{25};
  Duration backoff_max{250};
  double budget = 0.2;  // retries per request over the last 10 s, plus a floor
  bool non_idempotent = false;
  uint64_t replay_buffer = 64 * 1024;  // request bodies up to this are kept for a retry

  bool retriesStatus(int status) const {
    for (uint16_t s : statuses) {
      if (s == status) return true;
    }
    return false;
  }
};

struct Upstream {
  // Grpc is HTTP/2 whose requests always carry `te: trailers` (gRPC needs it).
  enum class Protocol : uint8_t { Http1, Http2, Grpc };
  enum class Balancing : uint8_t { RoundRobin, LeastRequest, Random, ConsistentHash };
  enum class Builtin : uint8_t { None, Echo };

  std::string name;
  Builtin builtin = Builtin::None;  // when not None, endpoints is empty
  std::vector<Endpoint> endpoints;  // non-empty unless builtin or dns
  // `dns: name:port`: the endpoints are the addresses the name resolves to (A and AAAA), again
  // every dns_refresh. The snapshot fills `endpoints` with them ("ip:port", weight 1).
  std::optional<Endpoint> dns;
  Duration dns_refresh{30'000};
  Protocol protocol = Protocol::Http1;
  Balancing balancing = Balancing::RoundRobin;
  HashOn hash_on;  // consistent_hash only
  UpstreamTimeouts timeouts;
  uint32_t max_connections = 1024;  // per worker and endpoint
  uint32_t max_idle = 128;          // per worker and endpoint
  std::optional<UpstreamTls> tls;
  std::optional<HealthCheck> health_check;
  std::optional<OutlierDetection> outlier;
  std::optional<CircuitBreaker> circuit_breaker;
  std::optional<RetryPolicy> retry;

  bool speaksHttp2() const { return protocol != Protocol::Http1; }
};

struct HeaderMatch {
  std::string name;   // lowercased
  std::string value;  // exact value, or the RE2 pattern when is_regex
  bool is_regex = false;
};

struct RouteMatch {
  enum class PathKind : uint8_t { Any, Prefix, Exact, Template, Regex };
  std::vector<std::string> hosts;  // lowercased; "*.example.com" wildcards; empty = any host
  PathKind path_kind = PathKind::Any;
  // Prefix: normalized, no trailing '/' except the root "/". Exact: normalized. Template:
  // segments like "/users/{id}", each {name} a whole segment, names unique. Regex: RE2 pattern
  // that compiled, matched against the whole normalized path.
  std::string path;
  std::vector<std::string> methods;  // uppercase; empty = any method
  std::vector<HeaderMatch> headers;
  std::vector<HeaderMatch> query;  // name = the query parameter name (case kept)
};

struct WeightedUpstream {
  std::string upstream;  // names an entry of Config::upstreams
  uint32_t weight = 1;   // > 0
};

struct Rewrite {
  bool strip_prefix = false;  // only on path_prefix routes
  std::string path;           // template; {params} name captures of the match template
};

// Where a credential is read from: "header:Authorization:Bearer" (the value after the prefix
// and one space), "header:X-API-Key", "cookie:access_token", "query:apikey".
struct CredentialSource {
  enum class Kind : uint8_t { Header, Cookie, Query };
  Kind kind = Kind::Header;
  std::string name;    // header names lowercased; cookie and query names as written
  std::string prefix;  // Header only, optional, e.g. "Bearer" (compared case-insensitively)
};

struct JwtProviderConfig {
  std::vector<std::string> algorithms;  // non-empty; names from HS256..EdDSA, never "none"
  std::string issuer;                   // empty = not checked
  std::vector<std::string> audiences;   // empty = not checked
  std::string secret;                   // raw bytes (secret: UTF-8 text, secret_base64: decoded)
  std::string jwks_file;                // path as written; exactly one of secret / jwks_file
  std::string jwks_text;                // the file's contents, read at load
  std::string jwks_url;                 // or: fetched at run time (http/https)
  std::string jwks_ca;                  // absolute path; https trust for jwks_url (default: system)
  Duration refresh{300'000};            // jwks_url: how often the key set is fetched again
  std::vector<CredentialSource> token_from;  // default: header:Authorization:Bearer
  Duration leeway{0};
  bool require_exp = true;
  std::vector<std::pair<std::string, std::string>> forward_claims;  // claim -> header name
};

struct ApiKeyProviderConfig {
  std::vector<CredentialSource> from;  // default: header:X-API-Key
};

// HTTP Basic (RFC 7617) against the consumers' basic_auth.
struct BasicProviderConfig {
  std::string realm = "portico";
};

// OAuth2 token introspection (RFC 7662).
struct IntrospectionProviderConfig {
  std::string endpoint;        // http:// or https://
  std::string endpoint_ca;     // absolute path; https trust (default: the system store)
  std::string client_id;
  std::string client_secret;
  Duration timeout{2'000};            // slower counts as unreachable: 503
  Duration cache_ttl{300'000};        // an active answer is kept until min(exp, this)
  Duration negative_cache_ttl{10'000};
  std::vector<CredentialSource> token_from;  // default: header:Authorization:Bearer
};

struct AuthProvider {
  enum class Type : uint8_t { Jwt, ApiKey, Mtls, Basic, Introspection };
  std::string name;
  Type type = Type::Jwt;
  JwtProviderConfig jwt;          // iff type == Jwt
  ApiKeyProviderConfig api_key;   // iff type == ApiKey
  BasicProviderConfig basic;      // iff type == Basic
  IntrospectionProviderConfig introspection;  // iff type == Introspection
};

struct Consumer {
  std::string name;                 // unique
  std::vector<std::string> groups;
  std::vector<std::string> api_keys;          // plain keys as written (secrets)
  std::vector<std::array<uint8_t, 32>> api_key_sha256;  // from hex
  std::vector<std::string> jwt_subjects;      // JWT `sub` values naming this consumer
  std::vector<std::string> mtls_subjects;     // client certificate SAN / CN values naming it
  std::string basic_username;                 // basic_auth: empty = none
  std::string basic_password_hash;            // crypt(3): $2b$ bcrypt, $y$ yescrypt, $6$ ...
  std::string plan;                           // names an entry of Config::plans; empty = none
};

// One rate limit (docs/rate-limiting.md). Windows and delays are whole milliseconds.
struct RateLimitKeyPart {
  enum class Kind : uint8_t { Ip, Consumer, Route, Header, Claim };
  Kind kind = Kind::Ip;
  std::string name;  // Header: lowercased; Claim: as written; else empty
};

struct RateLimit {
  enum class Algorithm : uint8_t { Gcra, SlidingWindow, FixedWindow };
  enum class Mode : uint8_t { Reject, Delay };
  enum class Store : uint8_t { Local, Redis };
  std::string name;                    // policy name: [a-z0-9_.-], unique within the route
  std::vector<RateLimitKeyPart> key;   // non-empty; {Consumer} when from_plan
  // limit: plan — limit, window, burst, algorithm and store come from the consumer's plan, and
  // the fields below are unused.
  bool from_plan = false;
  uint64_t limit = 0;                  // > 0 unless from_plan
  Duration window{1'000};              // > 0
  uint64_t burst = 0;                  // Gcra only
  Algorithm algorithm = Algorithm::Gcra;
  Mode mode = Mode::Reject;            // Delay only with Gcra
  Duration max_delay{1'000};
  Store store = Store::Local;          // Redis only when Config::redis is set
  Duration sync{0};                    // > 0: batched Redis mode (Redis store, window algorithms)
};

struct Quota {
  uint64_t limit = 0;      // > 0 requests per period
  Duration period{86'400'000};  // aligned to the Unix epoch; unused when calendar_month
  bool calendar_month = false;  // `period: month`: calendar months in UTC
  bool in_redis = false;        // kept in Redis (a redis section exists), else in this process
};

struct Plan {
  std::string name;
  std::optional<RateLimit> rate_limit;  // name "plan", key {Consumer}
  std::optional<Quota> quota;
};

struct Redis {
  std::string host;  // numeric address or a name resolved at load
  uint16_t port = 6379;
  std::string address;  // "host:port" as written
  std::string password;  // empty: no AUTH
  Duration timeout{50};
  bool on_error_allow = true;  // on_error: allow | deny
  std::string key_prefix = "portico:";
};

// All conditions must hold (SPEC §3 route authorize).
struct Authorize {
  std::vector<std::string> scopes;  // every one in the token's `scope` (space list) or `scp`
  std::vector<std::string> groups;  // the consumer is in at least one
  std::vector<std::pair<std::string, std::string>> claims;  // claim == value (string compare)
};

// A grpc_services entry (docs/transcoding.md): a descriptor set and the upstream serving it.
struct GrpcService {
  std::string name;
  std::string descriptor_set;                         // absolute
  std::string upstream;                               // a protocol: grpc upstream
  std::vector<std::string> services;                  // full names; empty: all of the set's
  std::shared_ptr<const transcode::Catalog> catalog;  // read at load
};

// A route's `grpc:`: REST/JSON transcoded to the service's methods.
struct GrpcRoute {
  std::string service;  // names a grpc_services entry
  std::shared_ptr<const transcode::Catalog> catalog;
  bool preserve_proto_field_names = false;
  bool always_print_primitive_fields = false;
  bool ignore_unknown_query_parameters = false;
  bool stream_json_array = false;  // stream: json_array (default ndjson)
};

struct Route {
  std::string name;  // unique; generated "route-N" when absent
  SourcePos pos;
  RouteMatch match;
  int32_t priority = 0;
  std::vector<WeightedUpstream> split;  // one entry with weight 1 for a plain `upstream:`
  Rewrite rewrite;
  filters::HeaderEdits request_headers;  // `headers: {request, response}`
  filters::HeaderEdits response_headers;
  std::optional<Duration> timeout;          // overrides the upstream's request timeout
  std::optional<uint64_t> max_body_bytes;   // overrides the listener's
  std::optional<filters::IpRulesConfig> ip;  // `ip: {allow, deny}`
  std::optional<filters::CorsConfig> cors;
  bool auth_public = false;                 // true: `auth: public`
  std::vector<std::string> auth;            // provider names (any one authenticates); set iff
                                            // !auth_public; each names an auth_providers entry
  std::optional<Authorize> authorize;        // only with providers, never with auth: public
  std::vector<RateLimit> rate_limits;        // all must admit
  uint32_t concurrency_limit = 0;            // 0 = none
  std::optional<GrpcRoute> grpc;             // then split is the service's upstream
};

struct Config {
  std::string file;  // path it was loaded from
  unsigned workers = 0;  // 0 = auto (one per core)
  Duration drain_timeout{30'000};
  std::vector<Listener> listeners;  // at least one, names and addresses unique
  Admin admin;
  AccessLog access_log;
  Metrics metrics;
  Tracing tracing;
  std::map<std::string, Upstream> upstreams;
  // Name servers for `dns:` upstreams, "ip:port"; empty: the system's (/etc/resolv.conf).
  std::vector<std::string> dns_resolvers;
  std::map<std::string, AuthProvider> auth_providers;
  std::vector<Consumer> consumers;
  std::optional<Redis> redis;
  std::map<std::string, Plan> plans;
  std::map<std::string, GrpcService> grpc_services;
  std::vector<Route> routes;
  // The config as JSON in the YAML's shape, secrets replaced (GET /admin/config).
  std::string redacted_json;
};

}  // namespace portico::config
