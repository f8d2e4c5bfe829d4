// Which endpoints the health checker watches: those of the upstreams with a health_check in the
// snapshot in force.
#include "server/server.hpp"

namespace portico::server {

void Server::checkHealth(const proxy::Snapshot& snap) {
  std::vector<upstream::HealthTarget> targets;
  for (const proxy::UpstreamRuntime& upstream : snap.upstreams) {
    const config::Upstream& settings = *upstream.config;
    for (size_t e = 0; e < upstream.addresses.size(); ++e) {
      const auto& health = upstream.health->sharedEndpoint(e);
      if (!settings.health_check) {
        // Checks turned off: a verdict of theirs no longer keeps the endpoint out.
        health->check_failed.store(false, std::memory_order_relaxed);
        health->check_passes = health->check_failures = 0;
        continue;
      }
      const std::string& written = settings.endpoints[e].text;
      upstream::HealthTarget& target = targets.emplace_back();
      target.name = "upstream \"" + settings.name + "\" endpoint " + written;
      target.address = upstream.addresses[e];
      target.settings = *settings.health_check;
      // HTTP/2-only and TLS endpoints get a TCP connect: a plain HTTP/1.1 GET would fail there.
      if (!settings.speaksHttp2() && !settings.tls) {
        target.request = upstream::HealthChecker::requestFor(target.settings, written);
      }
      target.health = health;
    }
  }
  health_checker_.setTargets(std::move(targets));
}

}  // namespace portico::server
