// The sections that say what the gateway reports: access_log, metrics, tracing.
#include "config/loader_context.hpp"
#include "config/values.hpp"

namespace portico::config::detail {
namespace {

constexpr std::string_view kAccessLogKeys[] = {"path", "format", "sample", "fields"};
constexpr std::string_view kMetricsKeys[] = {"enabled"};
constexpr std::string_view kTracingKeys[] = {"propagate",       "otlp_endpoint", "sample",
                                             "service_name",    "export_interval",
                                             "queue_size"};
const KeySet kAccessLog{kAccessLogKeys, {}};
const KeySet kMetrics{kMetricsKeys, {}};
const KeySet kTracing{kTracingKeys, {}};

void parseAccessLogFields(Context& ctx, const Item& item, std::vector<AccessLog::Field>& out) {
  for (const Item& entry : ctx.readList(item, true)) {
    auto index = ctx.choice(entry, AccessLog::kFieldNames);
    if (!index) continue;
    auto field = static_cast<AccessLog::Field>(*index);
    for (AccessLog::Field seen : out) {
      if (seen == field) {
        ctx.error(ctx.pos(entry), "access log field " +
                                      quote(AccessLog::kFieldNames[*index]) + " is listed twice");
      }
    }
    out.push_back(field);
  }
}

// An OTLP/HTTP collector's URL: http:// or https://, with a host.
bool isCollectorUrl(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.starts_with(scheme)) {
      std::string_view rest = url.substr(scheme.size());
      return !rest.empty() && rest.front() != '/' && rest.find_first_of(" \t\r\n") == rest.npos;
    }
  }
  return false;
}

}  // namespace

void parseAccessLog(Context& ctx, const Item& item, AccessLog& log) {
  static constexpr std::string_view kFormats[] = {"json", "text"};
  MapFields map = ctx.readMap(item, "access_log", &kAccessLog);
  for (const Field& f : map.fields) {
    if (f.key == "path") {
      if (auto path = ctx.text(f.item())) {
        if (path->empty()) {
          ctx.error(ctx.pos(f.item()),
                    "\"path\" must not be empty (use stdout, stderr, off or "
                    "a file path)");
        } else {
          log.path = *path;
        }
      }
    } else if (f.key == "format") {
      if (auto index = ctx.choice(f.item(), kFormats)) {
        log.format = *index == 0 ? AccessLog::Format::Json : AccessLog::Format::Text;
      }
    } else if (f.key == "sample") {
      log.sample = ctx.number(f.item(), 0.0, 1.0).value_or(log.sample);
    } else if (f.key == "fields") {
      parseAccessLogFields(ctx, f.item(), log.fields);
    }
  }
}

void parseMetrics(Context& ctx, const Item& item, Metrics& metrics) {
  MapFields map = ctx.readMap(item, "metrics", &kMetrics);
  if (const Field* f = map.find("enabled")) {
    metrics.enabled = ctx.boolean(f->item()).value_or(metrics.enabled);
  }
}

void parseTracing(Context& ctx, const Item& item, Tracing& tracing) {
  MapFields map = ctx.readMap(item, "tracing", &kTracing);
  for (const Field& f : map.fields) {
    if (f.key == "propagate") {
      tracing.propagate = ctx.boolean(f.item()).value_or(tracing.propagate);
    } else if (f.key == "otlp_endpoint") {
      if (auto url = ctx.text(f.item())) {
        if (!url->empty() && !isCollectorUrl(*url)) {
          ctx.error(ctx.pos(f.item()), "\"otlp_endpoint\" must be an http:// or https:// URL, "
                                       "e.g. http://127.0.0.1:4318/v1/traces");
        } else {
          tracing.otlp_endpoint = *url;
        }
      }
    } else if (f.key == "sample") {
      tracing.sample = ctx.number(f.item(), 0.0, 1.0).value_or(tracing.sample);
    } else if (f.key == "service_name") {
      if (auto name = ctx.text(f.item())) tracing.service_name = *name;
    } else if (f.key == "export_interval") {
      tracing.export_interval = ctx.duration(f.item(), true).value_or(tracing.export_interval);
    } else if (f.key == "queue_size") {
      if (auto n = ctx.integer(f.item(), 1, 1'000'000)) tracing.queue_size = static_cast<uint32_t>(*n);
    }
  }
}

}  // namespace portico::config::detail
