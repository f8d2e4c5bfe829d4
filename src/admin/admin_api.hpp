#pragma once
// The admin API's JSON documents that read the config and the metrics (the server answers the
// rest): /admin/routes, /admin/upstreams, /admin/stats, and the dashboard page.

#include <span>
#include <string>
#include <string_view>

#include "config/model.hpp"
#include "observability/metrics_view.hpp"

namespace portico::upstream {
class UpstreamHealth;
}

namespace portico::admin {

// Each route's config as written (secrets redacted), in config order, with name and priority.
std::string routesJson(const config::Config& config);
// Per upstream, per endpoint: health, requests in flight and counts; the circuit state.
// `health`: each upstream's, in the order of config.upstreams.
std::string upstreamsJson(const config::Config& config, const observability::MetricsView& view,
                          std::span<const upstream::UpstreamHealth* const> health, uint64_t now_ms);
// Per route counts and latency buckets, auth and rate-limit refusals, open connections.
std::string statsJson(const config::Config& config, const observability::MetricsView& view,
                      double uptime_seconds, uint64_t config_version);
// GET /: one self-contained page (dashboard.html, built in).
std::string_view dashboardHtml();

}  // namespace portico::admin
