#pragma once
// The loader's working state: the parsed YAML, the error list, and typed readers that report
// every mismatch at the node at fault and keep going, so one run finds every problem.

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.hpp"
#include "config/model.hpp"
#include "config/yaml_tree.hpp"

namespace portico::config::detail {

// A value to read, and how messages name it: `"endpoints"` or `an item of "endpoints"`.
struct Item {
  NodeId node = 0;
  std::string_view key;
  bool list_item = false;

  std::string label() const;
};

// One key: value pair of a YAML map.
struct Field {
  std::string_view key;
  Position key_pos;
  NodeId value = 0;

  Item item() const { return Item{value, key, false}; }
};

// The keys a map may hold. `unsupported` lists keys the SPEC defines but this version does not
// implement: they are refused with a message saying so, never silently ignored.
struct KeySet {
  std::span<const std::string_view> supported;
  std::span<const std::string_view> unsupported;
};

struct MapFields {
  bool valid = false;             // the node was a map
  Position pos;                   // of the map node
  std::vector<Field> fields;      // accepted keys, in document order, without duplicates
  bool unsupported_seen = false;  // a key this version refuses was there (already reported)

  const Field* find(std::string_view key) const;
};

class Context {
 public:
  Context(const YamlDocument& doc, std::string file, const EnvLookup& env);

  const YamlNode& node(NodeId id) const { return doc_[id]; }
  Position pos(const Item& item) const { return doc_[item.node].pos; }
  // The config's file name as given to the loader (relative paths in it start from its folder).
  const std::string& file() const { return file_; }

  void error(Position pos, std::string message);
  size_t errorCount() const { return errors_.size(); }
  // Sorted by position (stable, so problems found at one node keep their order), duplicates
  // (from YAML aliases read twice) removed.
  std::vector<ConfigError> takeErrors();

  bool expectMap(const Item& item);
  bool expectList(const Item& item);

  // Reads a map's fields. With `keys`, every other key is an error (with a "did you mean" when
  // one is close); without, any key is accepted (upstream names, header names). `context`
  // names the map in messages ("match", "upstream \"users\""); empty means the top level.
  MapFields readMap(const Item& item, std::string_view context, const KeySet* keys);
  // The items of a list; reports an empty list when `non_empty`.
  std::vector<Item> readList(const Item& item, bool non_empty);
  // A list of non-empty strings (groups, scopes, audiences), appended to `out` without repeats.
  void readStrings(const Item& item, std::vector<std::string>& out);
  void requireKey(const MapFields& map, std::string_view key, std::string_view context);

  // A scalar's text with ${ENV} references expanded.
  std::optional<std::string> text(const Item& item);
  std::optional<bool> boolean(const Item& item);
  std::optional<int64_t> integer(const Item& item, int64_t min, int64_t max);
  std::optional<double> number(const Item& item, double min, double max);
  std::optional<Duration> duration(const Item& item, bool positive);
  std::optional<uint64_t> size(const Item& item, bool positive);
  // The index of the value in `choices`; reports `invalid value "x" for "key" (use a or b)`.
  std::optional<size_t> choice(const Item& item, std::span<const std::string_view> choices);

 private:
  std::string kindName(const YamlNode& node) const;
  void typeError(const Item& item, std::string_view expected);

  const YamlDocument& doc_;
  std::string file_;
  const EnvLookup& env_;
  std::vector<ConfigError> errors_;
};

// The URL in `url_field` (a jwks_url or an introspection endpoint) against checkPlainHttpUrl,
// with the map's `insecure` flag.
void checkFetchUrl(Context& ctx, const MapFields& map, const Field& url_field,
                   std::string_view url);

// A path from the config made absolute: relative paths start from the config file's folder.
std::string resolveConfigPath(const Context& ctx, const std::string& path);

// "a, b or c"
std::string joinChoices(std::span<const std::string_view> choices);

// RFC 9110 §7.6.1 plus the pre-standard proxy-connection: they describe one hop, so a route
// must not set them for the next one (nor may a provider forward a claim in them).
inline constexpr std::string_view kHopByHop[] = {"connection", "keep-alive", "transfer-encoding",
                                                 "te",         "trailer",    "upgrade",
                                                 "proxy-connection"};

// Upstream and auth provider names: letters, digits, '_', '-' and '.'. They appear in metrics
// labels and logs; keep them plain.
bool isPlainName(std::string_view name);

// Parts of the loader, by section of the file.
std::map<std::string, AuthProvider> parseAuthProviders(Context& ctx, const Item& item);
// Consumers name plans parsed before them.
std::vector<Consumer> parseConsumers(Context& ctx, const Item& item,
                                     const std::map<std::string, Plan>& plans);
void parseListenerTls(Context& ctx, const Item& item, ListenerTls& out);
void parseJwtProvider(Context& ctx, const Item& item, const std::string& context,
                      JwtProviderConfig& config);
// header:NAME[:PREFIX] | cookie:NAME | query:NAME entries (token_from, from).
void parseCredentialSources(Context& ctx, const Item& item, std::vector<CredentialSource>& out);
void parseUpstreamTls(Context& ctx, const Item& item, UpstreamTls& out);
// Routes refer to the upstreams, auth providers, plans and redis parsed before them.
std::vector<Route> parseRoutes(Context& ctx, const Item& item, const Config& config);
void parseRedis(Context& ctx, const Item& item, std::optional<Redis>& out);
// An upstream's endpoints (with weights), load_balancing and hash_on (loader_balancing.cpp).
void parseEndpoints(Context& ctx, const Item& item, const std::string& upstream,
                    std::vector<Endpoint>& out);
void parseBalancing(Context& ctx, const MapFields& map, Upstream& up);
// `dns: name:port` and dns_refresh of an upstream; the top-level dns_resolvers.
void parseDns(Context& ctx, const MapFields& map, Upstream& up);
void parseDnsResolvers(Context& ctx, const Item& item, std::vector<std::string>& out);
// grpc_services (loader_grpc.cpp): each entry's descriptor set is read and checked here.
void parseGrpcServices(Context& ctx, const Item& item, Config& config);
// A route's `grpc:` block; false when it is unusable (reported).
bool parseRouteGrpc(Context& ctx, const Item& item, const Config& config, Route& route);
// health_check, outlier, circuit_breaker and retry (loader_resilience.cpp).
void parseResilience(Context& ctx, const MapFields& map, Upstream& up);
// access_log, metrics and tracing (loader_observability.cpp).
void parseAccessLog(Context& ctx, const Item& item, AccessLog& log);
void parseMetrics(Context& ctx, const Item& item, Metrics& metrics);
void parseTracing(Context& ctx, const Item& item, Tracing& tracing);
// The document as JSON, `${ENV}` expanded and secrets replaced by "<redacted>" (redacted.cpp).
std::string redactedJson(const YamlDocument& doc, const EnvLookup& env);

}  // namespace portico::config::detail
