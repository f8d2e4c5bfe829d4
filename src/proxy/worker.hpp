#pragma once
// A worker: one thread, one event loop, its own listening sockets (SO_REUSEPORT), its own
// upstream pools and its own object pools. The only things it shares with other threads are the
// immutable Snapshot and the control messages posted to its loop.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/buffer.hpp"
#include "core/slab.hpp"
#include "net/event_loop.hpp"
#include "net/socket.hpp"
#include "observability/access_log.hpp"
#include "observability/metrics.hpp"
#include "proxy/snapshot.hpp"
#include "upstream/cluster.hpp"
#include "upstream/connection.hpp"
#include "upstream/http2_client.hpp"

namespace portico::auth {
class TokenCache;
}
namespace portico::tls {
class ServerContext;
}
namespace portico::auth {
class VerifyPool;
}
namespace portico::observability {
class SpanExporter;
}
namespace portico::ratelimit {
class LocalStore;
class SyncStore;
class RedisClient;
}

namespace portico::proxy {

class Session;
class Worker;

// The worker's view of a snapshot: the shared immutable part plus this worker's pools for its
// upstreams. Reference-counted without atomics, since only the owning worker touches it.
struct WorkerSnapshot {
  std::shared_ptr<const Snapshot> shared;
  std::vector<upstream::Cluster> clusters;                  // [upstream]
  std::unique_ptr<auth::TokenCache> token_cache;            // made on first use
  std::vector<std::shared_ptr<const auth::jwt::KeySet>> jwks;  // [provider]: current key sets
  std::vector<std::atomic<int64_t>*> concurrency;  // [route]: in-flight counters, or null
  // This worker's metric series, found by name on first use (Worker::routeMetrics...).
  std::vector<observability::RouteMetrics*> route_metrics;              // [route]
  std::vector<observability::UpstreamMetrics*> upstream_metrics;        // [upstream]
  std::vector<std::vector<observability::EndpointMetrics*>> endpoint_metrics;  // [upstream][e]
  uint32_t refs = 0;

  WorkerSnapshot();
  ~WorkerSnapshot();
};

// One listening socket of this worker.
class Acceptor final : public net::EventHandler, public net::Timed {
 public:
  Acceptor(Worker& worker, size_t listener_index, net::UniqueFd fd)
      : worker_(worker), listener_index_(listener_index), fd_(std::move(fd)) {}
  void onEvents(uint32_t events) override;
  // Out of file descriptors: the socket stays readable (level-triggered), so instead of
  // spinning on it, stop watching it for a moment (as NGINX does).
  void pause();
  void onTimer() override;
  int fd() const { return fd_.get(); }
  void close() { fd_.reset(); }

 private:
  Worker& worker_;
  size_t listener_index_;
  net::UniqueFd fd_;
};

class Worker final : public upstream::Connection::Host,
                     public upstream::Http2ClientConnection::Host {
 public:
  // Hands a snapshot this worker no longer uses to the control thread, which frees it there: a
  // 100,000-route snapshot takes tens of milliseconds to free, never on a serving thread.
  using RetireFn = std::function<void(std::shared_ptr<const Snapshot>)>;
  // Asks the control thread for a fresh key set of a jwks_url (a token named an unknown kid).
  using UnknownKidFn = std::function<void(const std::string& url)>;

  Worker(unsigned index, std::vector<net::UniqueFd> listen_fds,
         std::shared_ptr<const Snapshot> snapshot, observability::AccessLogSink* access_log,
         RetireFn retire, UnknownKidFn unknown_kid = {});
  ~Worker() override;

  void start();
  void join();
  // Thread-safe. Requests started after this use `snapshot`.
  void postSnapshot(std::shared_ptr<const Snapshot> snapshot);
  // Thread-safe. New connections on the listener use `context` (its certificate files changed).
  void postTls(size_t listener_index, std::shared_ptr<const tls::ServerContext> context);
  // Thread-safe. Requests from now on verify tokens of `url`'s providers with `keys`.
  void postJwks(std::string url, std::shared_ptr<const auth::jwt::KeySet> keys);
  // Worker thread: a token named a kid the key set of `url` lacks (rate-limited here).
  void unknownKid(const std::string& url);
  // Thread-safe. Stops accepting, lets requests in flight finish, closes idle connections; the
  // thread exits when no connection is left or at `deadline_ms` (monotonic).
  void postDrain(uint64_t deadline_ms);

  std::atomic<uint64_t> active_connections{0};

  // --- used by sessions, on the worker thread ---
  net::EventLoop& loop() override { return loop_; }
  WorkerSnapshot* acquireSnapshot();
  // The listener's TLS context for new connections; null for a plain listener.
  const std::shared_ptr<const tls::ServerContext>& tlsContext(size_t listener_index) const {
    return tls_[listener_index];
  }
  void releaseSnapshot(WorkerSnapshot* snap);
  bool draining() const { return draining_; }
  uint64_t random();
  // Writes a new 32-hex-digit request id into out.
  void newRequestId(char* out);
  observability::AccessLogSink* accessLog() { return access_log_; }
  // Where slow auth checks run (shared by the workers; set before start()): password hashes
  // use CPU, calls to an IdP mostly wait.
  auth::VerifyPool* hashPool() { return hash_pool_; }
  auth::VerifyPool* callPool() { return call_pool_; }
  void setVerifyPools(auth::VerifyPool* hash, auth::VerifyPool* call) {
    hash_pool_ = hash;
    call_pool_ = call;
  }
  Buffer& accessLogBuffer() { return access_log_buffer_; }
  // The process's local rate-limit counters (shared by the workers; set before start()).
  ratelimit::LocalStore* localStore() { return local_store_; }
  void setLocalStore(ratelimit::LocalStore* store) { local_store_ = store; }
  ratelimit::SyncStore* syncStore() { return sync_store_; }
  void setSyncStore(ratelimit::SyncStore* store) { sync_store_ = store; }
  // This worker's Redis connection for the limits decided in Redis per request: null before
  // any config asked for one, shut down (it refuses commands) while none does.
  ratelimit::RedisClient* redis() { return redis_.get(); }

  // This worker's counters (null: metrics are off), set before start(), and its series for a
  // snapshot's route, upstream and endpoint.
  void setMetrics(observability::WorkerMetrics* metrics) { metrics_storage_ = metrics; }
  observability::WorkerMetrics* metrics() { return metrics_; }
  // Counted whatever the config says: gauges (connections, requests in flight) must stay true.
  bool hasMetricsStorage() const { return metrics_storage_ != nullptr; }
  observability::RouteMetrics& routeMetrics(WorkerSnapshot& snap, const RouteRuntime* route);
  observability::UpstreamMetrics& upstreamMetrics(WorkerSnapshot& snap, uint32_t upstream);
  observability::EndpointMetrics& endpointMetrics(WorkerSnapshot& snap, uint32_t upstream,
                                                  uint32_t endpoint);
  // Where sampled spans go (shared; set before start()), and this worker's batch of them.
  void setSpanExporter(observability::SpanExporter* exporter) { span_exporter_ = exporter; }
  bool exportsSpans() const { return exports_spans_; }
  // Whether a new trace is sampled, at the config's `tracing.sample` rate.
  bool sampleNewTrace() { return trace_sample_threshold_ != 0 && random() <= trace_sample_threshold_; }
  void addSpan(std::string_view encoded) {
    span_buffer_.append(encoded);
    ++span_count_;
  }
  std::string& spanScratch() { return span_scratch_; }

  // An idle pooled connection, or a new one being connected (Connection::connecting), or null
  // with errno set. The connection is owned by `owner` until releaseUpstream().
  upstream::Connection* acquireUpstream(upstream::EndpointPool& pool,
                                        upstream::ConnectionOwner* owner, bool& reused,
                                        uint32_t max_connections);
  // Returns a connection: to the idle list when `reusable` (and the pool has room), else closed.
  void releaseUpstream(upstream::Connection* conn, bool reusable, uint32_t max_idle);

  void accept(size_t listener_index, int listen_fd);
  // A session for one HTTP/2 stream (not a connection: not in the live list), or null when
  // `budget` are in use (limits.http2_max_streams_per_worker): streams are counted per worker,
  // not only per connection, so many connections cannot multiply their stream limit into
  // unbounded memory (review M4).
  Session* newStreamSession(uint64_t budget);
  // Runs session->runDeferredDrive() after the current batch of events.
  void deferDrive(Session* session) { deferred_drives_.push_back(session); }
  void sessionClosed(Session* session);
  void idleConnectionLost(upstream::Connection& conn) override;
  void deferFlush(upstream::Http2ClientConnection& connection) override {
    deferred_flushes_.push_back(&connection);
  }
  void http2ConnectionClosed(upstream::Http2ClientConnection& connection) override;

 private:
  void run();
  void installSnapshot(std::shared_ptr<const Snapshot> snapshot);
  void applyObservability(const config::Config& config);
  void installRedis(const Snapshot& snap);
  void afterBatch();
  void closeIdleSessions();
  void maybeFinishDrain();
  void flushAccessLog();
  void maybeFlushAccessLog();
  void flushSpans();
  void retire(std::unique_ptr<WorkerSnapshot> snap);
  Session* takeSession();
  upstream::Connection* takeConnection();
  upstream::Connection* acquireHttp2Stream(upstream::EndpointPool& pool,
                                           upstream::ConnectionOwner* owner,
                                           uint32_t max_connections);

  unsigned index_;
  net::EventLoop loop_;
  std::thread thread_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::unique_ptr<WorkerSnapshot> current_;
  std::vector<std::shared_ptr<const tls::ServerContext>> tls_;  // [listener]
  std::vector<std::unique_ptr<WorkerSnapshot>> retired_;
  std::unordered_map<std::string, std::unique_ptr<upstream::EndpointPool>> pools_;

  Slab<Session> sessions_;  // every session object ever made
  std::vector<Session*> free_sessions_;
  size_t stream_sessions_ = 0;
  std::vector<Session*> closing_sessions_;  // recycled after the current batch
  std::vector<Session*> deferred_drives_;
  std::vector<upstream::Http2ClientConnection*> deferred_flushes_;
  std::vector<Session*> drive_batch_;  // the batch afterBatch() is running
  std::vector<upstream::Http2ClientConnection*> flush_batch_;
  // Closed HTTP/2 connections, freed once no session holds one of their streams.
  std::vector<std::unique_ptr<upstream::Http2ClientConnection>> closed_http2_;
  std::vector<Session*> live_sessions_;     // for drain; swap-removed via Session::live_index_
  std::vector<std::unique_ptr<upstream::Connection>> connections_;
  std::vector<upstream::Connection*> free_connections_;
  std::vector<upstream::Connection*> closing_connections_;

  observability::AccessLogSink* access_log_;
  auth::VerifyPool* hash_pool_ = nullptr;
  auth::VerifyPool* call_pool_ = nullptr;
  ratelimit::LocalStore* local_store_ = nullptr;
  ratelimit::SyncStore* sync_store_ = nullptr;
  // Made with the first config that asks Redis, then reconfigured or shut down, never
  // destroyed before the worker: the loop's timer heap may name it.
  std::unique_ptr<ratelimit::RedisClient> redis_;
  RetireFn retire_;
  UnknownKidFn unknown_kid_;
  std::unordered_map<std::string, uint64_t> unknown_kid_sent_ms_;  // per URL
  // Whole lines, written out when 32 KiB have gathered or the oldest is 100 ms old (NGINX's
  // `buffer=`/`flush=`): one write(2) per many requests under load.
  Buffer access_log_buffer_;
  uint64_t access_log_since_ms_ = 0;  // loop time of the oldest line waiting
  class AccessLogFlush final : public net::Timed {
   public:
    explicit AccessLogFlush(Worker& worker) : worker_(worker) {}
    void onTimer() override { worker_.flushAccessLog(); }

   private:
    Worker& worker_;
  };
  AccessLogFlush access_log_flush_{*this};
  observability::WorkerMetrics* metrics_storage_ = nullptr;
  observability::WorkerMetrics* metrics_ = nullptr;  // null while the config turns metrics off
  bool exports_spans_ = false;
  uint64_t trace_sample_threshold_ = 0;  // sample × 2^64 (0: never)
  observability::RouteMetrics* no_route_metrics_ = nullptr;
  observability::SpanExporter* span_exporter_ = nullptr;
  std::string span_buffer_;  // encoded spans, handed over once per batch
  uint32_t span_count_ = 0;
  std::string span_scratch_;
  bool draining_ = false;
  uint64_t drain_deadline_ms_ = 0;
  uint64_t rng_state_;
  uint64_t request_counter_ = 0;

  friend class Session;
};

}  // namespace portico::proxy
