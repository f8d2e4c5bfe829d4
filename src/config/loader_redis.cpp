// The `redis` section: the one Redis the gateways share (docs/rate-limiting.md).

#include <string>

#include "config/loader_context.hpp"
#include "config/values.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kRedisKeys[] = {"address", "addresses", "password",
                                           "timeout", "on_error",  "key_prefix"};
const KeySet kRedis{kRedisKeys, {}};
constexpr std::string_view kOnError[] = {"allow", "deny"};

}  // namespace

void parseRedis(Context& ctx, const Item& item, std::optional<Redis>& out) {
  MapFields map = ctx.readMap(item, "redis", &kRedis);
  if (!map.valid) return;
  Redis redis;
  // `address`, or `addresses` with a single entry: the one Redis to talk to.
  std::optional<Item> address;
  if (const Field* f = map.find("address")) address = f->item();
  if (const Field* f = map.find("addresses")) {
    std::vector<Item> entries = ctx.readList(f->item(), true);
    if (address) {
      ctx.error(f->key_pos, "give \"address\" or \"addresses\", not both");
    } else if (entries.size() > 1) {
      ctx.error(ctx.pos(f->item()),
                "Redis Cluster (several \"addresses\") is not supported yet; "
                "give one \"address\"");
    } else if (entries.size() == 1) {
      address = entries[0];
    }
  } else if (!address) {
    ctx.requireKey(map, "address", "redis");
  }
  if (address) {
    if (auto text = ctx.text(*address)) {
      Endpoint endpoint;
      if (auto problem = parseEndpoint(*text, endpoint)) {
        ctx.error(ctx.pos(*address), *problem);
      }
      redis.host = endpoint.host;
      redis.port = endpoint.port;
      redis.address = *text;
    }
  }
  if (const Field* f = map.find("password")) {
    redis.password = ctx.text(f->item()).value_or("");
  }
  if (const Field* f = map.find("timeout")) {
    redis.timeout = ctx.duration(f->item(), true).value_or(redis.timeout);
  }
  if (const Field* f = map.find("on_error")) {
    if (auto i = ctx.choice(f->item(), kOnError)) redis.on_error_allow = *i == 0;
  }
  if (const Field* f = map.find("key_prefix")) {
    if (auto text = ctx.text(f->item())) {
      if (text->size() > 64 || text->find_first_of(" \r\n\t") != std::string::npos) {
        ctx.error(ctx.pos(f->item()), "\"key_prefix\" must be at most 64 bytes without spaces");
      }
      redis.key_prefix = std::move(*text);
    }
  }
  out = std::move(redis);
}

}  // namespace portico::config::detail
