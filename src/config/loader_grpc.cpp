// grpc_services and a route's `grpc:` (docs/transcoding.md). A service's descriptor set is read
// and checked at load, so `portico validate` and a reload refuse one that cannot serve.
#include "config/loader_context.hpp"
#include "config/values.hpp"
#include "transcode/catalog.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kServiceKeys[] = {"descriptor_set", "upstream", "services"};
constexpr std::string_view kRouteGrpcKeys[] = {"service", "preserve_proto_field_names",
                                               "always_print_primitive_fields",
                                               "unknown_query_parameters", "stream"};
constexpr std::string_view kUnknownQueryActions[] = {"reject", "ignore"};
constexpr std::string_view kStreamFormats[] = {"ndjson", "json_array"};
const KeySet kService{kServiceKeys, {}};
const KeySet kRouteGrpc{kRouteGrpcKeys, {}};

void parseService(Context& ctx, const Field& entry, const Config& config, GrpcService& service) {
  MapFields map = ctx.readMap(entry.item(), "grpc service " + quote(service.name), &kService);
  if (!map.valid) return;
  ctx.requireKey(map, "descriptor_set", "grpc service " + quote(service.name));
  ctx.requireKey(map, "upstream", "grpc service " + quote(service.name));
  bool ok = true;
  if (const Field* f = map.find("upstream")) {
    auto name = ctx.text(f->item());
    auto it = name ? config.upstreams.find(*name) : config.upstreams.end();
    if (name && it == config.upstreams.end()) {
      ctx.error(ctx.pos(f->item()), "unknown upstream " + quote(*name));
      ok = false;
    } else if (name && it->second.protocol != Upstream::Protocol::Grpc) {
      ctx.error(ctx.pos(f->item()),
                "upstream " + quote(*name) + " of a grpc service must have \"protocol: grpc\"");
      ok = false;
    }
    service.upstream = name.value_or("");
  }
  if (const Field* f = map.find("services")) ctx.readStrings(f->item(), service.services);
  const Field* set = map.find("descriptor_set");
  if (set == nullptr) return;
  auto path = ctx.text(set->item());
  if (!path || !ok) return;
  service.descriptor_set = resolveConfigPath(ctx, *path);
  std::string error;
  service.catalog = transcode::Catalog::load(service.descriptor_set, service.services, error);
  if (service.catalog == nullptr) ctx.error(ctx.pos(set->item()), error);
}

}  // namespace

void parseGrpcServices(Context& ctx, const Item& item, Config& config) {
  MapFields map = ctx.readMap(item, "grpc_services", nullptr);
  for (const Field& entry : map.fields) {
    GrpcService service;
    service.name = std::string(entry.key);
    if (!isPlainName(service.name)) {
      ctx.error(entry.key_pos, "invalid grpc service name " + quote(service.name) +
                                   " (use letters, digits, '_', '-' and '.')");
    }
    parseService(ctx, entry, config, service);
    config.grpc_services.emplace(service.name, std::move(service));
  }
}

bool parseRouteGrpc(Context& ctx, const Item& item, const Config& config, Route& route) {
  MapFields map = ctx.readMap(item, "grpc", &kRouteGrpc);
  if (!map.valid) return false;
  ctx.requireKey(map, "service", "grpc");
  GrpcRoute grpc;
  bool ok = map.find("service") != nullptr;
  for (const Field& f : map.fields) {
    if (f.key == "service") {
      auto name = ctx.text(f.item());
      auto it = name ? config.grpc_services.find(*name) : config.grpc_services.end();
      if (name && it == config.grpc_services.end()) {
        ctx.error(ctx.pos(f.item()),
                  "unknown grpc service " + quote(*name) + " (define it under grpc_services)");
      }
      ok = ok && it != config.grpc_services.end() && it->second.catalog != nullptr;
      if (ok) {
        grpc.service = *name;
        grpc.catalog = it->second.catalog;
      }
    } else if (f.key == "preserve_proto_field_names") {
      grpc.preserve_proto_field_names = ctx.boolean(f.item()).value_or(false);
    } else if (f.key == "always_print_primitive_fields") {
      grpc.always_print_primitive_fields = ctx.boolean(f.item()).value_or(false);
    } else if (f.key == "unknown_query_parameters") {
      grpc.ignore_unknown_query_parameters = ctx.choice(f.item(), kUnknownQueryActions) == 1;
    } else if (f.key == "stream") {
      grpc.stream_json_array = ctx.choice(f.item(), kStreamFormats) == 1;
    }
  }
  if (!ok) return false;
  route.grpc = std::move(grpc);
  return true;
}

}  // namespace portico::config::detail
