// An upstream's endpoints and how a request picks one of them: endpoints or dns, load_balancing,
// weights, hash_on.
#include <algorithm>
#include <unordered_map>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "net/socket.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kEndpointKeys[] = {"address", "weight"};
const KeySet kEndpoint{kEndpointKeys, {}};
constexpr int64_t kMaxWeight = 1000;

// "host:port", or {address: "host:port", weight: N}.
std::optional<Endpoint> parseEndpointEntry(Context& ctx, const Item& entry) {
  std::optional<std::string> text;
  uint32_t weight = 1;
  if (ctx.node(entry.node).kind == YamlNode::Kind::Map) {
    MapFields map = ctx.readMap(entry, "endpoint", &kEndpoint);
    ctx.requireKey(map, "address", "endpoint");
    if (const Field* f = map.find("address")) text = ctx.text(f->item());
    if (const Field* f = map.find("weight")) {
      auto value = ctx.integer(f->item(), 0, kMaxWeight);
      if (!value) return std::nullopt;
      weight = static_cast<uint32_t>(*value);
    }
  } else {
    text = ctx.text(entry);
  }
  if (!text) return std::nullopt;
  Endpoint endpoint;
  if (auto problem = parseEndpoint(*text, endpoint)) {
    ctx.error(ctx.pos(entry), *problem);
    return std::nullopt;
  }
  endpoint.weight = weight;
  return endpoint;
}

}  // namespace

void parseEndpoints(Context& ctx, const Item& item, const std::string& upstream,
                    std::vector<Endpoint>& out) {
  std::unordered_map<std::string, Position> seen;
  const size_t errors_before = ctx.errorCount();
  for (const Item& entry : ctx.readList(item, true)) {
    std::optional<Endpoint> endpoint = parseEndpointEntry(ctx, entry);
    if (!endpoint) continue;
    if (!seen.emplace(endpoint->text, ctx.pos(entry)).second) {
      ctx.error(ctx.pos(entry),
                "duplicate endpoint " + quote(endpoint->text) + " in upstream " + quote(upstream));
      continue;
    }
    out.push_back(std::move(*endpoint));
  }
  // (Judged only when every entry was read: a refused weight would make it look so.)
  if (ctx.errorCount() == errors_before && !out.empty() && std::all_of(out.begin(), out.end(),
                                  [](const Endpoint& e) { return e.weight == 0; })) {
    ctx.error(ctx.pos(item), "every endpoint of upstream " + quote(upstream) +
                                 " has weight 0: at least one must take traffic");
  }
}

void parseDns(Context& ctx, const MapFields& map, Upstream& up) {
  const Field* dns = map.find("dns");
  const Field* refresh = map.find("dns_refresh");
  if (dns == nullptr) {
    if (refresh != nullptr) {
      ctx.error(refresh->key_pos,
                "\"dns_refresh\" needs \"dns\" (upstream " + quote(up.name) + ")");
    }
    return;
  }
  for (std::string_view other : {"endpoints", "builtin"}) {
    if (map.find(other) != nullptr) {
      ctx.error(dns->key_pos, "\"dns\" cannot be used with " + quote(other) + " (upstream " +
                                  quote(up.name) + ")");
      return;
    }
  }
  if (auto text = ctx.text(dns->item())) {
    Endpoint endpoint;
    if (auto problem = parseEndpoint(*text, endpoint)) {
      ctx.error(ctx.pos(dns->item()), *problem);
    } else {
      up.dns = std::move(endpoint);
    }
  }
  if (refresh == nullptr) return;
  up.dns_refresh = ctx.duration(refresh->item(), true).value_or(up.dns_refresh);
  if (up.dns_refresh < Duration(100)) {
    ctx.error(refresh->key_pos, "\"dns_refresh\" must be at least 100ms");
  }
}

void parseDnsResolvers(Context& ctx, const Item& item, std::vector<std::string>& out) {
  for (const Item& entry : ctx.readList(item, true)) {
    auto text = ctx.text(entry);
    if (!text) continue;
    const std::string& value = *text;
    // A numeric address, with a port or without one (53).
    Endpoint endpoint;
    const bool has_port = !parseEndpoint(value, endpoint);
    net::SocketAddress address;
    if (has_port && net::parseNumericAddress(endpoint.host, endpoint.port, address)) {
      out.push_back(value);
    } else if (!has_port && net::parseNumericAddress(value, 53, address)) {
      const bool bare_v6 = value.find(':') != std::string::npos && !value.starts_with('[');
      out.push_back(bare_v6 ? "[" + value + "]:53" : value + ":53");
    } else {
      ctx.error(ctx.pos(entry), "invalid value " + quote(value) +
                                    " in \"dns_resolvers\" (use a numeric address, with a port "
                                    "or without: 53)");
    }
  }
}

void parseBalancing(Context& ctx, const MapFields& map, Upstream& up) {
  static constexpr std::string_view kBalancing[] = {"round_robin", "least_request", "random",
                                                    "consistent_hash"};
  if (const Field* f = map.find("load_balancing")) {
    if (auto index = ctx.choice(f->item(), kBalancing)) {
      up.balancing = static_cast<Upstream::Balancing>(*index);
    }
  }
  // The Maglev table names an endpoint in 16 bits.
  constexpr size_t kMaxHashedEndpoints = 60'000;
  if (up.balancing == Upstream::Balancing::ConsistentHash &&
      up.endpoints.size() > kMaxHashedEndpoints) {
    ctx.error(map.find("load_balancing")->key_pos,
              "consistent_hash takes at most 60000 endpoints (upstream " + quote(up.name) + ")");
  }
  const Field* hash_on = map.find("hash_on");
  if (hash_on == nullptr) return;
  if (up.balancing != Upstream::Balancing::ConsistentHash) {
    ctx.error(hash_on->key_pos, "\"hash_on\" needs load_balancing: consistent_hash (upstream " +
                                    quote(up.name) + ")");
    return;
  }
  auto text = ctx.text(hash_on->item());
  if (!text) return;
  std::string_view value = *text;
  if (value == "ip") {
    up.hash_on.kind = HashOn::Kind::Ip;
  } else if (value == "consumer") {
    up.hash_on.kind = HashOn::Kind::Consumer;
  } else if (value.starts_with("header:") && value.size() > 7 &&
             isToken(value.substr(7))) {
    up.hash_on.kind = HashOn::Kind::Header;
    up.hash_on.name = lowercase(value.substr(7));
  } else if (value.starts_with("cookie:") && value.size() > 7 &&
             isToken(value.substr(7))) {
    up.hash_on.kind = HashOn::Kind::Cookie;
    up.hash_on.name = std::string(value.substr(7));
  } else {
    ctx.error(ctx.pos(hash_on->item()), "invalid value " + quote(value) +
                                            " for \"hash_on\" (use ip, consumer, header:NAME or "
                                            "cookie:NAME)");
  }
}

}  // namespace portico::config::detail
