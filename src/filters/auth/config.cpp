#include "filters/auth/config.hpp"

#include <algorithm>
#include <string_view>
#include <vector>

#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "config/yaml_tree.hpp"

namespace portico::filters {

using config::detail::closestMatch;
using config::detail::Context;
using config::detail::Field;
using config::detail::Item;
using config::detail::KeySet;
using config::detail::lowercase;
using config::detail::MapFields;
using config::detail::quote;
using config::detail::YamlNode;

namespace {

constexpr std::string_view kAuthorizeKeys[] = {"scopes", "groups", "claims"};
const KeySet kAuthorize{kAuthorizeKeys, {}};

// The name of an existing auth provider, or nullopt with an error (and a suggestion if close).
std::optional<std::string> providerName(
    Context& ctx, const Item& item, const std::map<std::string, config::AuthProvider>& providers) {
  auto name = ctx.text(item);
  if (!name) {
    return std::nullopt;
  }
  if (providers.count(*name) != 0) {
    return name;
  }
  std::vector<std::string_view> candidates;
  for (const auto& [key, value] : providers) candidates.push_back(key);
  std::string message = "unknown auth provider " + quote(*name);
  std::optional<std::string> suggestion = closestMatch(*name, candidates);
  if (!suggestion && !name->empty()) {
    // "corp" for "corp_jwt": a name cut short is too far for the edit distance.
    const std::string lower = lowercase(*name);
    for (std::string_view candidate : candidates) {
      if (lowercase(candidate).starts_with(lower)) {
        if (suggestion) {
          suggestion.reset();  // ambiguous
          break;
        }
        suggestion = std::string(candidate);
      }
    }
  }
  if (suggestion) {
    message += " (did you mean " + quote(*suggestion) + "?)";
  } else if (providers.empty()) {
    message += " (define it under auth_providers)";
  }
  ctx.error(ctx.pos(item), std::move(message));
  return std::nullopt;
}

}  // namespace

void parseRouteAuth(Context& ctx, const Item& item,
                    const std::map<std::string, config::AuthProvider>& providers,
                    config::Route& route) {
  const YamlNode& n = ctx.node(item.node);
  if (n.kind == YamlNode::Kind::Scalar) {
    auto text = ctx.text(item);
    if (!text) {
      return;  // an ${ENV} problem, already reported
    }
    if (*text == "public") {
      route.auth_public = true;
      return;
    }
    ctx.error(ctx.pos(item), "invalid value " + quote(*text) +
                                 " for \"auth\" (use public or a list of auth providers, "
                                 "e.g. [" +
                                 *text + "])");
    return;
  }
  if (n.kind != YamlNode::Kind::Sequence) {
    ctx.error(ctx.pos(item),
              "expected public or a list of auth providers for \"auth\", got " +
                  std::string(n.kind == YamlNode::Kind::Map ? "a map" : "an empty value"));
    return;
  }
  for (const Item& entry : ctx.readList(item, true)) {
    auto name = providerName(ctx, entry, providers);
    if (!name) {
      continue;
    }
    if (std::find(route.auth.begin(), route.auth.end(), *name) != route.auth.end()) {
      ctx.error(ctx.pos(entry), "duplicate auth provider " + quote(*name));
      continue;
    }
    route.auth.push_back(std::move(*name));
  }
}

void parseRouteAuthorize(Context& ctx, const Field& field, config::Route& route) {
  if (route.auth_public) {
    ctx.error(field.key_pos, "\"authorize\" needs auth providers (this route is public)");
  }
  MapFields map = ctx.readMap(field.item(), "authorize", &kAuthorize);
  if (!map.valid) {
    return;
  }
  config::Authorize authorize;
  if (const Field* f = map.find("scopes")) {
    ctx.readStrings(f->item(), authorize.scopes);
  }
  if (const Field* f = map.find("groups")) {
    ctx.readStrings(f->item(), authorize.groups);
  }
  if (const Field* f = map.find("claims")) {
    MapFields claims = ctx.readMap(f->item(), "authorize.claims", nullptr);
    for (const Field& c : claims.fields) {
      if (c.key.empty()) {
        ctx.error(c.key_pos, "empty claim name in authorize.claims");
        continue;
      }
      if (auto value = ctx.text(c.item())) {
        authorize.claims.emplace_back(std::string(c.key), std::move(*value));
      }
    }
  }
  route.authorize = std::move(authorize);
}

}  // namespace portico::filters
