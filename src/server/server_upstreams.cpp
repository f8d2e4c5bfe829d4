// The upstreams' side of the control thread: which endpoints the health checker watches, and
// the snapshot rebuilt when a `dns:` name resolves to other addresses.
#include "core/log.hpp"
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
      // A dns: upstream's checks name the name, as its requests do.
      const std::string& written = settings.dns ? settings.dns->text : settings.endpoints[e].text;
      upstream::HealthTarget& target = targets.emplace_back();
      target.name = "upstream \"" + settings.name + "\" endpoint " + settings.endpoints[e].text;
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

void Server::applyDnsAnswers() {
  if (draining_ || !config_source_ || !current_) return;
  std::vector<std::string> errors;
  // The config in force, not the file (which may have changed without a reload); its version
  // stays, since nobody changed it.
  auto snapshot = buildSnapshot(*config_source_, current_->version, errors);
  if (!snapshot) {
    for (const auto& e : errors) LOG_ERROR("new DNS answers not applied: %s", e.c_str());
    return;
  }
  install(snapshot);
}

void Server::install(const std::shared_ptr<const proxy::Snapshot>& snapshot) {
  current_ = snapshot;
  tls_ = snapshot->tls;
  tls_failed_.assign(tls_.size(), {});
  for (auto& w : workers_) w->postSnapshot(snapshot);
  checkHealth(*snapshot);
}

}  // namespace portico::server
