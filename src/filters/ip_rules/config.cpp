#include "filters/ip_rules/config.hpp"

#include <string_view>

#include "config/loader_context.hpp"
#include "config/values.hpp"

namespace portico::filters {
namespace {

using config::detail::Context;
using config::detail::Item;

constexpr std::string_view kIpKeys[] = {"allow", "deny"};
const config::detail::KeySet kIp{kIpKeys, {}};

bool readCidrs(Context& ctx, const Item& item, std::vector<config::Cidr>& out) {
  const size_t errors = ctx.errorCount();
  for (const Item& entry : ctx.readList(item, true)) {
    auto text = ctx.text(entry);
    if (!text) continue;
    config::Cidr cidr;
    if (auto problem = config::detail::parseCidr(*text, cidr)) {
      ctx.error(ctx.pos(entry), *problem);
    } else {
      out.push_back(std::move(cidr));
    }
  }
  return ctx.errorCount() == errors;
}

}  // namespace

std::optional<IpRulesConfig> parseIpRules(Context& ctx, const Item& item) {
  const size_t errors = ctx.errorCount();
  config::detail::MapFields map = ctx.readMap(item, "ip", &kIp);
  if (!map.valid) return std::nullopt;
  IpRulesConfig rules;
  if (const auto* f = map.find("allow")) readCidrs(ctx, f->item(), rules.allow);
  if (const auto* f = map.find("deny")) readCidrs(ctx, f->item(), rules.deny);
  if (map.fields.empty()) ctx.error(map.pos, "\"ip\" needs \"allow\", \"deny\" or both");
  if (ctx.errorCount() != errors) return std::nullopt;
  return rules;
}

}  // namespace portico::filters
