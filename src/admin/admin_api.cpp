#include "admin/admin_api.hpp"

#include <nlohmann/json.hpp>

#include "upstream/upstream_health.hpp"

namespace portico::admin {
namespace {

using Json = nlohmann::json;

template <typename AnyJson>
std::string dump(const AnyJson& json) {
  return json.dump(-1, ' ', false, AnyJson::error_handler_t::replace);
}

}  // namespace

std::string routesJson(const config::Config& config) {
  // Ordered: each route reads as it was written.
  nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(config.redacted_json, nullptr, false);
  const nlohmann::ordered_json* written = parsed.is_object() && parsed.contains("routes") ? &parsed["routes"]
                                                                        : nullptr;
  nlohmann::ordered_json routes = nlohmann::ordered_json::array();
  for (size_t i = 0; i < config.routes.size(); ++i) {
    const config::Route& route = config.routes[i];
    nlohmann::ordered_json entry = written != nullptr && written->is_array() && i < written->size() &&
                         (*written)[i].is_object()
                     ? (*written)[i]
                     : nlohmann::ordered_json::object();
    entry["name"] = route.name;
    entry["priority"] = route.priority;
    routes.push_back(std::move(entry));
  }
  return dump(routes);
}

namespace {

Json endpointHealth(const upstream::UpstreamHealth* health, size_t index, uint64_t now_ms) {
  if (health == nullptr || index >= health->size()) {
    return {{"healthy", true}, {"state", "healthy"}, {"reason", ""}};
  }
  const upstream::EndpointHealth& endpoint = health->endpoint(index);
  if (endpoint.check_failed.load(std::memory_order_relaxed)) {
    return {{"healthy", false}, {"state", "unhealthy"}, {"reason", endpoint.check_reason}};
  }
  if (endpoint.ejected(now_ms)) {
    return {{"healthy", false}, {"state", "ejected"}, {"reason", health->ejectionReason(index)}};
  }
  return {{"healthy", true}, {"state", "healthy"}, {"reason", ""}};
}

const char* circuitName(upstream::CircuitBreakerState::State state) {
  switch (state) {
    case upstream::CircuitBreakerState::State::Closed:
      return "closed";
    case upstream::CircuitBreakerState::State::HalfOpen:
      return "half_open";
    case upstream::CircuitBreakerState::State::Open:
      return "open";
  }
  return "closed";
}

}  // namespace

std::string upstreamsJson(const config::Config& config, const observability::MetricsView& view,
                          std::span<const upstream::UpstreamHealth* const> health,
                          uint64_t now_ms) {
  Json out = Json::object();
  size_t u = 0;
  for (const auto& [name, upstream] : config.upstreams) {
    const upstream::UpstreamHealth* upstream_health = u < health.size() ? health[u] : nullptr;
    ++u;
    Json endpoints = Json::object();
    const auto seen = view.upstreams.find(name);
    for (size_t e = 0; e < upstream.endpoints.size(); ++e) {
      const config::Endpoint& endpoint = upstream.endpoints[e];
      observability::MetricsView::Endpoint counts;
      if (seen != view.upstreams.end()) {
        if (auto it = seen->second.endpoints.find(endpoint.text);
            it != seen->second.endpoints.end()) {
          counts = it->second;
        }
      }
      Json entry = endpointHealth(upstream_health, e, now_ms);
      entry["weight"] = endpoint.weight;
      entry["in_flight"] = counts.in_flight;
      entry["requests"] = counts.requests();
      entry["failures"] = counts.failures();
      endpoints[endpoint.text] = std::move(entry);
    }
    static constexpr const char* kBalancing[] = {"round_robin", "least_request", "random",
                                                 "consistent_hash"};
    Json circuit_window = {{"requests", 0}, {"failures", 0}};
    const char* circuit = "closed";
    uint64_t opened = 0;
    if (upstream_health != nullptr) {
      const auto& breaker = upstream_health->breaker();
      const auto window = breaker.window(now_ms);
      circuit = circuitName(breaker.state());
      circuit_window = {{"requests", window.requests}, {"failures", window.failures}};
      opened = breaker.opened();
    }
    out[name] = {{"circuit", circuit},
                 {"circuit_window", std::move(circuit_window)},
                 {"circuit_opened", opened},
                 {"load_balancing", kBalancing[static_cast<size_t>(upstream.balancing)]},
                 {"endpoints", std::move(endpoints)}};
  }
  return dump(out);
}

std::string statsJson(const config::Config& config, const observability::MetricsView& view,
                      double uptime_seconds, uint64_t config_version) {
  Json routes = Json::array();
  Json auth_failures = Json::array();
  Json rate_limited = Json::array();
  for (const auto& [name, route] : view.routes) {
    uint64_t total = 0, errors_4xx = 0, errors_5xx = 0;
    Json statuses = Json::object();
    std::map<int, uint64_t> by_status;
    for (const auto& [key, count] : route.requests) by_status[static_cast<int>(key & 0xffff)] += count;
    for (const auto& [status, count] : by_status) {
      statuses[std::to_string(status)] = count;
      total += count;
      if (status >= 400 && status < 500) errors_4xx += count;
      if (status >= 500) errors_5xx += count;
    }
    routes.push_back({{"name", name},
                      {"requests", total},
                      {"errors_4xx", errors_4xx},
                      {"errors_5xx", errors_5xx},
                      {"statuses", std::move(statuses)},
                      {"duration_counts", route.duration.buckets},
                      {"duration_sum", static_cast<double>(route.duration.sum_us) / 1e6}});
    for (const auto& [joined, count] : route.auth_failures) {
      size_t zero = joined.find('\0');
      auth_failures.push_back({{"route", name},
                               {"provider", joined.substr(0, zero)},
                               {"reason", zero == std::string::npos ? "" : joined.substr(zero + 1)},
                               {"count", count}});
    }
    for (const auto& [key, count] : route.rate_limited) {
      rate_limited.push_back({{"route", name}, {"key", key}, {"count", count}});
    }
  }
  Json connections = Json::object();
  for (size_t i = 0; i < config.listeners.size() && i < view.connections.size(); ++i) {
    connections[config.listeners[i].name] = view.connections[i];
  }
  Json bounds = Json::array();
  for (double b : observability::kDurationBounds) bounds.push_back(b);
  return dump(Json{{"uptime_seconds", uptime_seconds},
               {"config_version", config_version},
               {"duration_bounds", std::move(bounds)},
               {"routes", std::move(routes)},
               {"auth_failures", std::move(auth_failures)},
               {"rate_limited", std::move(rate_limited)},
               {"connections_active", std::move(connections)}});
}

}  // namespace portico::admin
