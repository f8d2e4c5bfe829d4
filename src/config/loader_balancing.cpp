// An upstream's endpoints and how a request picks one of them: load_balancing, weights, hash_on.
#include <algorithm>
#include <unordered_map>

#include "config/loader_context.hpp"
#include "config/values.hpp"

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
