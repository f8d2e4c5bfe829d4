#pragma once
// The control side of `portico run`: loads the config, opens the listeners, starts the workers,
// serves the admin API, and handles signals — SIGHUP reloads, SIGTERM/SIGINT drain, SIGUSR1
// reopens the access log. Runs on the main thread; never on the request path.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_server.hpp"
#include "auth/jwks_fetcher.hpp"
#include "auth/verify_pool.hpp"
#include "net/event_loop.hpp"
#include "observability/access_log.hpp"
#include "observability/metrics.hpp"
#include "observability/otlp.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/worker.hpp"
#include "ratelimit/local_store.hpp"
#include "ratelimit/redis_sync.hpp"
#include "ratelimit/sync_store.hpp"
#include "tls/server_context.hpp"
#include "upstream/dns_resolver.hpp"
#include "upstream/health_checker.hpp"
#include "upstream/upstream_health.hpp"

namespace portico::server {

struct RunOptions {
  std::string config_path;
  unsigned workers_override = 0;  // --workers; 0 = from the config
};

class Server {
 public:
  explicit Server(RunOptions options);
  ~Server();
  // Returns the process exit code.
  int run();

 private:
  class SignalHandler;
  class Housekeeping;
  struct ReloadResult {
    bool ok = false;
    uint64_t version = 0;
    std::vector<std::string> errors;
  };

  ReloadResult reload();
  void drain();
  // Rebuilds the TLS context of each listener whose certificate files changed on disk.
  void checkCertificates();
  // Tells the sync thread the Redis and interval of the batched limits in force, if any.
  void configureSync(const proxy::Snapshot& snap);
  admin::AdminResponse handleAdmin(const admin::AdminRequest& request);
  // The admin API's views of the metrics: /metrics, /admin/stats, /admin/upstreams.
  admin::AdminResponse metricsResponse(const std::string& path);
  void configureTracing(const config::Config& config);
  // `source`: the config as loaded, before a `dns:` upstream's name became its endpoints.
  std::shared_ptr<const proxy::Snapshot> loadSnapshot(std::vector<std::string>& errors,
                                                      std::optional<config::Config>& source);
  // What the upstreams need once a snapshot is in force (server_upstreams.cpp): health checks
  // of its endpoints, names kept resolved.
  void checkHealth(const proxy::Snapshot& snap);
  // A `dns:` name resolves to other addresses now: the same config, rebuilt with them.
  void applyDnsAnswers();
  // Puts a built snapshot in force: the workers get it, the health checker its endpoints.
  void install(const std::shared_ptr<const proxy::Snapshot>& snapshot);
  std::shared_ptr<const proxy::Snapshot> buildSnapshot(config::Config config, uint64_t version,
                                                       std::vector<std::string>& errors);

  RunOptions options_;
  net::EventLoop loop_;
  upstream::HealthRegistry health_registry_;  // before current_: snapshots point into it
  std::shared_ptr<const proxy::Snapshot> current_;
  // Before workers_: it outlives them (they count in it until they stop).
  std::unique_ptr<ratelimit::LocalStore> local_limits_ = std::make_unique<ratelimit::LocalStore>();
  std::unique_ptr<ratelimit::SyncStore> sync_limits_ = std::make_unique<ratelimit::SyncStore>();
  std::unique_ptr<ratelimit::RedisSync> redis_sync_;  // its thread uses sync_limits_
  // Before workers_, which count in them and hand spans to it until they stop.
  std::vector<std::unique_ptr<observability::WorkerMetrics>> worker_metrics_;
  observability::SpanExporter span_exporter_;
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  // After workers_: destroyed (its threads joined) before them, since its jobs post to them.
  std::unique_ptr<auth::VerifyPool> hash_pool_;
  std::unique_ptr<auth::VerifyPool> call_pool_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<SignalHandler> signals_;
  std::unique_ptr<Housekeeping> housekeeping_;
  std::unique_ptr<auth::JwksFetcher> jwks_;  // destroyed before loop_: its threads post to it
  upstream::HealthChecker health_checker_{loop_};
  std::unique_ptr<upstream::DnsResolver> dns_;                  // its thread posts to loop_
  std::optional<config::Config> config_source_;                 // of current_, as loaded
  std::vector<std::shared_ptr<const tls::ServerContext>> tls_;  // [listener], as in force
  std::vector<std::vector<tls::FileStamp>> tls_failed_;        // files a rebuild failed on
  observability::AccessLogSink access_log_;
  uint64_t next_version_ = 1;
  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;
  double started_unix_ = 0;   // seconds
  uint64_t started_us_ = 0;   // monotonic
  bool draining_ = false;
};

}  // namespace portico::server
