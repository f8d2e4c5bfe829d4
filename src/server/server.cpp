#include "server/server.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include <cstring>
#include <thread>

#include "admin/admin_api.hpp"
#include "config/loader.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"
#include "http/local_reply.hpp"
#include "observability/metrics_view.hpp"
#include "ratelimit/limiter.hpp"

namespace portico::server {
namespace {

std::string jsonString(std::string_view s) {
  Buffer b(s.size() + 8);
  http::appendJsonString(s, b);
  return std::string(b.view());
}

// Constant time in the token's content, so response timing says nothing about how much of a
// guessed token was right.
bool isLoopbackHost(std::string_view host) {
  if (host.starts_with('[')) {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  return host == "localhost" || host == "[::1]" || host.starts_with("127.");
}

// Without a token the admin API trusts whoever reaches it, which a web page could be (review L2):
// a name that is not the loopback's (DNS rebinding) is refused, and so is a POST from another
// origin (a form posting to /admin/reload).
const char* browserRefusal(const admin::AdminRequest& req, bool has_token) {
  if (has_token) return nullptr;  // a browser cannot send it cross-origin without our consent
  if (!req.host.empty() && !isLoopbackHost(req.host))
    return "the admin API answers loopback names only";
  if (req.method == "POST" && !req.origin.empty()) {
    std::string_view origin = req.origin;
    if (!origin.starts_with("http://") || origin.substr(7) != req.host) {
      return "cross-origin requests are refused";
    }
  }
  return nullptr;
}

bool bearerMatches(std::string_view authorization, const std::string& token) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (authorization.size() != kPrefix.size() + token.size() ||
      !authorization.starts_with(kPrefix)) {
    return false;
  }
  return CRYPTO_memcmp(authorization.data() + kPrefix.size(), token.data(), token.size()) == 0;
}

bool sameListeners(const config::Config& a, const config::Config& b) {
  if (a.listeners.size() != b.listeners.size()) return false;
  for (size_t i = 0; i < a.listeners.size(); ++i) {
    if (a.listeners[i].host != b.listeners[i].host || a.listeners[i].port != b.listeners[i].port) {
      return false;
    }
  }
  return a.admin.enabled == b.admin.enabled && a.admin.host == b.admin.host &&
         a.admin.port == b.admin.port;
}

}  // namespace

class Server::SignalHandler final : public net::EventHandler {
 public:
  explicit SignalHandler(Server& server) : server_(server) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1}) sigaddset(&set, sig);
    fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    server_.loop_.addReadable(fd_, this);
  }
  ~SignalHandler() override {
    server_.loop_.remove(fd_);
    ::close(fd_);
  }
  void onEvents(uint32_t) override {
    signalfd_siginfo info{};
    while (::read(fd_, &info, sizeof info) == sizeof info) {
      switch (info.ssi_signo) {
        case SIGHUP: {
          auto result = server_.reload();
          if (!result.ok) {
            for (const auto& e : result.errors) LOG_ERROR("reload refused: %s", e.c_str());
          }
          break;
        }
        case SIGUSR1:
          server_.access_log_.reopen();
          break;
        default:
          server_.drain();
          break;
      }
    }
  }

 private:
  Server& server_;
  int fd_ = -1;
};

// Certificate files are polled, not watched with inotify: an editor's or cert-manager's
// rename-over and a symlink swap (Kubernetes secrets) are all seen the same way by stat().
// Once a second on the control thread: certificate files that changed, rate-limit counters
// that went idle.
class Server::Housekeeping final : public net::Timed {
 public:
  static constexpr uint64_t kIntervalMs = 1000;
  explicit Housekeeping(Server& server) : server_(server) {
    server_.loop_.setTimeout(*this, kIntervalMs);
  }
  void onTimer() override {
    server_.checkCertificates();
    const int64_t now = unixNs();
    server_.local_limits_->sweep(now);
    server_.sync_limits_->sweep(now);
    server_.loop_.setTimeout(*this, kIntervalMs);
  }

 private:
  Server& server_;
};

Server::Server(RunOptions options) : options_(std::move(options)) {}

Server::~Server() = default;

std::shared_ptr<const proxy::Snapshot> Server::loadSnapshot(std::vector<std::string>& errors,
                                                            std::optional<config::Config>& source) {
  auto loaded = config::loadConfigFile(options_.config_path);
  for (const auto& e : loaded.errors) errors.push_back(e.format());
  if (!loaded.config) return nullptr;
  if (!jwks_) {
    jwks_ = std::make_unique<auth::JwksFetcher>(
        loop_, [this](const std::string& url, auth::JwksFetcher::KeySetPtr keys) {
          for (auto& w : workers_) w->postJwks(url, keys);
        });
  }
  if (!dns_) dns_ = std::make_unique<upstream::DnsResolver>(loop_, [this] { applyDnsAnswers(); });
  jwks_->prepare(*loaded.config);  // key sets of new jwks_url providers, fetched now
  dns_->prepare(*loaded.config);   // and the addresses of new dns: names
  source = *loaded.config;
  return buildSnapshot(std::move(*loaded.config), next_version_, errors);
}

std::shared_ptr<const proxy::Snapshot> Server::buildSnapshot(config::Config config,
                                                             uint64_t version,
                                                             std::vector<std::string>& errors) {
  return proxy::Snapshot::build(
      std::move(config), version, errors,
      [this](const std::string& url) { return jwks_->keys(url); }, &health_registry_,
      [this](const std::string& name_port) { return dns_->addresses(name_port); });
}

Server::ReloadResult Server::reload() {
  ReloadResult result;
  if (draining_) {
    result.errors.push_back("draining: reload refused");
    return result;
  }
  uint64_t started = monotonicUs();
  std::optional<config::Config> source;
  auto snapshot = loadSnapshot(result.errors, source);
  if (snapshot && !sameListeners(current_->config, snapshot->config)) {
    result.errors.push_back(
        "listener and admin addresses cannot change on reload; restart portico to change them");
    snapshot.reset();
  }
  if (!snapshot) {
    ++reloads_failed_;
    return result;
  }
  ++next_version_;
  install(snapshot);
  jwks_->activate(snapshot->config);
  config_source_ = std::move(source);
  dns_->activate(snapshot->config);
  configureSync(*snapshot);
  configureTracing(snapshot->config);
  ++reloads_ok_;
  result.ok = true;
  result.version = snapshot->version;
  LOG_INFO("config version %llu loaded (%zu routes) in %.1f ms",
           static_cast<unsigned long long>(snapshot->version), snapshot->routes.size(),
           static_cast<double>(monotonicUs() - started) / 1000.0);
  return result;
}

void Server::checkCertificates() {
  const auto& listeners = current_->config.listeners;
  for (size_t i = 0; i < tls_.size(); ++i) {
    if (!tls_[i] || !listeners[i].tls) continue;
    std::vector<tls::FileStamp> now = tls_[i]->currentStamps();
    if (now == tls_[i]->stamps() || now == tls_failed_[i]) continue;
    std::vector<std::string> errors;
    auto context =
        tls::ServerContext::build(*listeners[i].tls, listeners[i].http2, listeners[i].name, errors);
    if (!context) {
      // Often a half-written pair (the new cert, the old key): the next change is tried again.
      tls_failed_[i] = std::move(now);
      for (const auto& e : errors) {
        LOG_ERROR("certificate reload failed, still serving the previous one: %s", e.c_str());
      }
      continue;
    }
    tls_[i] = context;
    tls_failed_[i].clear();
    for (auto& w : workers_) w->postTls(i, context);
    LOG_INFO("listener \"%s\": certificates reloaded", listeners[i].name.c_str());
  }
}

void Server::configureSync(const proxy::Snapshot& snap) {
  const config::Config& cfg = snap.config;
  const int64_t interval_ns = snap.limiter->shortestSyncNs();
  if (interval_ns == 0 || !cfg.redis) {
    redis_sync_->configure(std::nullopt);
    return;
  }
  ratelimit::SyncSettings settings;
  settings.redis.address = snap.redis_address;
  settings.redis.address_text = cfg.redis->address;
  settings.redis.password = cfg.redis->password;
  settings.redis.timeout_ms = static_cast<uint64_t>(cfg.redis->timeout.count());
  settings.key_prefix = cfg.redis->key_prefix;
  settings.interval_ms = static_cast<uint64_t>(interval_ns / 1'000'000);
  redis_sync_->configure(std::move(settings));
}

void Server::drain() {
  if (draining_) return;
  draining_ = true;
  LOG_INFO("draining: finishing requests in flight (up to %lld ms)",
           static_cast<long long>(current_->config.drain_timeout.count()));
  uint64_t deadline = monotonicMs() + static_cast<uint64_t>(current_->config.drain_timeout.count());
  for (auto& w : workers_) w->postDrain(deadline);
  // Joining on a helper thread keeps the admin API (readyz = 503) answering meanwhile.
  std::thread([this] {
    for (auto& w : workers_) w->join();
    loop_.post([this] { loop_.stop(); });
  }).detach();
}

void Server::configureTracing(const config::Config& config) {
  observability::SpanExporter::Settings settings;
  settings.endpoint = config.tracing.otlp_endpoint;
  settings.service_name = config.tracing.service_name;
  settings.interval_ms = static_cast<uint64_t>(config.tracing.export_interval.count());
  settings.queue_size = config.tracing.queue_size;
  span_exporter_.configure(std::move(settings));
}

admin::AdminResponse Server::metricsResponse(const std::string& path) {
  std::vector<const observability::WorkerMetrics*> shards;
  for (const auto& m : worker_metrics_) shards.push_back(m.get());
  const config::Config& cfg = current_->config;
  observability::MetricsView view = observability::collectMetrics(shards, cfg.listeners.size());
  std::vector<const upstream::UpstreamHealth*> health;
  for (const auto& upstream : current_->upstreams) health.push_back(upstream.health.get());
  if (path == "/admin/upstreams") {
    return {200, "application/json", admin::upstreamsJson(cfg, view, health, monotonicMs())};
  }
  const double uptime = static_cast<double>(monotonicUs() - started_us_) / 1e6;
  if (path == "/admin/stats") {
    return {200, "application/json", admin::statsJson(cfg, view, uptime, current_->version)};
  }
  observability::ScrapeExtras extras;
  for (const auto& listener : cfg.listeners) extras.listeners.push_back(listener.name);
  for (const auto& [name, upstream] : cfg.upstreams) extras.upstreams.push_back(name);
  for (const auto* h : health)
    extras.circuit_states.push_back(static_cast<int>(h->breaker().state()));
  extras.reloads_ok = reloads_ok_;
  extras.reloads_failed = reloads_failed_;
  extras.spans_exported = span_exporter_.exported();
  extras.spans_dropped = span_exporter_.dropped();
  extras.spans_failed = span_exporter_.failed();
  extras.start_time_seconds = started_unix_;
  extras.counting = cfg.metrics.enabled;
  return {200, "text/plain; version=0.0.4; charset=utf-8",
          observability::renderPrometheus(view, extras)};
}

admin::AdminResponse Server::handleAdmin(const admin::AdminRequest& req) {
  if (req.path == "/healthz") return {200, "application/json", R"({"status":"ok"})"};
  const std::string& token = current_->config.admin.token;
  // The page holds no data: it asks the API, with the token, for everything it shows.
  if (req.path == "/" && req.method == "GET" && !browserRefusal(req, !token.empty())) {
    return {200, "text/html; charset=utf-8", std::string(admin::dashboardHtml())};
  }
  const std::string& metrics_token = current_->config.admin.metrics_token;
  const bool scrape = req.path == "/metrics" && req.method == "GET";
  if (scrape && !metrics_token.empty() && bearerMatches(req.authorization, metrics_token)) {
    return metricsResponse(req.path);
  }
  if (!token.empty() && !bearerMatches(req.authorization, token)) {
    return {
        401, "application/json",
        R"({"error":{"status":401,"code":"unauthenticated","message":"admin token required"}})"};
  }
  if (const char* refusal = browserRefusal(req, !token.empty())) {
    return {403, "application/json",
            std::string(R"({"error":{"status":403,"code":"forbidden","message":")") + refusal +
                "\"}}"};
  }
  if (req.path == "/readyz") {
    if (draining_) return {503, "application/json", R"({"status":"draining"})"};
    return {200, "application/json",
            R"({"status":"ready","config_version":)" + std::to_string(current_->version) + "}"};
  }
  if (req.path == "/admin/reload") {
    if (req.method != "POST") return {405, "application/json", R"({"error":"use POST"})"};
    auto result = reload();
    if (result.ok) {
      return {200, "application/json",
              R"({"status":"reloaded","version":)" + std::to_string(result.version) + "}"};
    }
    std::string body = R"({"status":"refused","errors":[)";
    for (size_t i = 0; i < result.errors.size(); ++i) {
      if (i) body += ',';
      body += jsonString(result.errors[i]);
    }
    body += "]}";
    return {422, "application/json", body};
  }
  if (req.path == "/admin/routes") return {200, "application/json", admin::routesJson(current_->config)};
  if (req.path == "/admin/config") return {200, "application/json", current_->config.redacted_json};
  if (req.path == "/metrics" || req.path == "/admin/stats" || req.path == "/admin/upstreams") {
    return metricsResponse(req.path);
  }
  return {404, "application/json",
          R"({"error":{"status":404,"code":"no_route","message":"unknown admin endpoint"}})"};
}

int Server::run() {
  // Signals are read from a signalfd; block them before any thread starts so all inherit it.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGHUP, SIGTERM, SIGINT, SIGUSR1}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> errors;
  current_ = loadSnapshot(errors, config_source_);
  if (!current_) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    return 1;
  }
  ++next_version_;
  tls_ = current_->tls;
  tls_failed_.assign(tls_.size(), {});
  const config::Config& cfg = current_->config;
  std::string error;
  if (!access_log_.open(cfg.access_log, error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  unsigned workers = options_.workers_override ? options_.workers_override : cfg.workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());

  // Every socket is opened before any worker starts: a port in use fails the start, clearly.
  std::vector<std::vector<net::UniqueFd>> fds(workers);
  for (const auto& listener : cfg.listeners) {
    net::SocketAddress address;
    net::parseNumericAddress(listener.host, listener.port, address);
    for (unsigned w = 0; w < workers; ++w) {
      net::UniqueFd fd = net::listenOn(address, true, error);
      if (!fd) {
        std::fprintf(stderr, "listener \"%s\" on %s:%u: %s\n", listener.name.c_str(),
                     listener.host.c_str(), listener.port, error.c_str());
        return 1;
      }
      fds[w].push_back(std::move(fd));
    }
  }
  if (cfg.admin.enabled) {
    net::SocketAddress address;
    net::parseNumericAddress(cfg.admin.host, cfg.admin.port, address);
    net::UniqueFd fd = net::listenOn(address, false, error);
    if (!fd) {
      std::fprintf(stderr, "admin on %s:%u: %s\n", cfg.admin.host.c_str(), cfg.admin.port,
                   error.c_str());
      return 1;
    }
    admin_ = std::make_unique<admin::AdminServer>(
        loop_, std::move(fd), [this](const admin::AdminRequest& r) { return handleAdmin(r); });
  }
  started_unix_ = static_cast<double>(unixNs()) / 1e9;
  started_us_ = monotonicUs();
  configureTracing(cfg);
  for (unsigned w = 0; w < workers; ++w) {
    worker_metrics_.push_back(std::make_unique<observability::WorkerMetrics>(cfg.listeners.size()));
    workers_.push_back(std::make_unique<proxy::Worker>(
        w, std::move(fds[w]), current_, &access_log_,
        [this](std::shared_ptr<const proxy::Snapshot> old) {
          loop_.post([old = std::move(old)]() mutable { old.reset(); });
        },
        [this](const std::string& url) {
          loop_.post([this, url] { jwks_->unknownKid(url); });
        }));
  }
  // Password hashes get two threads, so they never take all the cores from the workers; calls to
  // an IdP mostly wait, so more of them run at once.
  hash_pool_ = std::make_unique<auth::VerifyPool>(2, 1024);
  call_pool_ = std::make_unique<auth::VerifyPool>(32, 4096);
  for (size_t w = 0; w < workers_.size(); ++w) {
    workers_[w]->setMetrics(worker_metrics_[w].get());
    workers_[w]->setSpanExporter(&span_exporter_);
  }
  for (auto& w : workers_) {
    w->setVerifyPools(hash_pool_.get(), call_pool_.get());
    w->setLocalStore(local_limits_.get());
    w->setSyncStore(sync_limits_.get());
  }
  // Before the control thread lowers its priority: the thread inherits it, and a sync that
  // comes late lets leases lapse.
  redis_sync_ = std::make_unique<ratelimit::RedisSync>(*sync_limits_);
  configureSync(*current_);
  dns_->activate(current_->config);
  checkHealth(*current_);
  for (auto& w : workers_) w->start();
  // Threads inherit the nice value when created, so this lowers only the control thread:
  // compiling a large config on reload then yields the cores to the workers.
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
  signals_ = std::make_unique<SignalHandler>(*this);
  housekeeping_ = std::make_unique<Housekeeping>(*this);
  jwks_->activate(current_->config);
  for (const auto& listener : cfg.listeners) {
    LOG_INFO("listening on %s:%u (%s), %u worker%s", listener.host.c_str(), listener.port,
             listener.name.c_str(), workers, workers == 1 ? "" : "s");
  }
  if (cfg.admin.enabled) LOG_INFO("admin API on %s:%u", cfg.admin.host.c_str(), cfg.admin.port);
  loop_.run();
  for (auto& w : workers_) w->join();
  LOG_INFO("stopped");
  return 0;
}

}  // namespace portico::server
