#include "proxy/worker.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "auth/token_cache.hpp"
#include "core/hex.hpp"
#include "core/log.hpp"
#include "proxy/http2_connection.hpp"
#include "proxy/session.hpp"
#include "ratelimit/local_store.hpp"
#include "ratelimit/limiter.hpp"
#include "ratelimit/redis_client.hpp"
#include "ratelimit/redis_script.hpp"
#include "tls/server_context.hpp"

namespace portico::proxy {

WorkerSnapshot::WorkerSnapshot() = default;
WorkerSnapshot::~WorkerSnapshot() = default;

void Acceptor::onEvents(uint32_t) {
  if (fd_) worker_.accept(listener_index_, fd_.get());
}

void Acceptor::pause() {
  worker_.loop().remove(fd_.get());
  worker_.loop().setTimeout(*this, 100);
}

void Acceptor::onTimer() {
  if (fd_ && !worker_.draining()) worker_.loop().addReadable(fd_.get(), this);
}

Worker::Worker(unsigned index, std::vector<net::UniqueFd> listen_fds,
               std::shared_ptr<const Snapshot> snapshot,
               observability::AccessLogSink* access_log, RetireFn retire,
               UnknownKidFn unknown_kid)
    : index_(index),
      access_log_(access_log),
      retire_(std::move(retire)),
      unknown_kid_(std::move(unknown_kid)) {
  std::random_device rd;
  rng_state_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ (static_cast<uint64_t>(index) << 17);
  for (size_t i = 0; i < listen_fds.size(); ++i) {
    acceptors_.push_back(std::make_unique<Acceptor>(*this, i, std::move(listen_fds[i])));
  }
  installSnapshot(std::move(snapshot));
  loop_.setAfterBatch([this] { afterBatch(); });
}

Worker::~Worker() {
  join();
  for (auto& c : connections_) {
    if (c->fd >= 0) ::close(c->fd);
  }
}

void Worker::start() {
  applyObservability(current_->shared->config);  // the services were set after the first install
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::run() {
  for (auto& a : acceptors_) loop_.addReadable(a->fd(), a.get());
  loop_.run();
  // Whatever is still open at the drain deadline is cut.
  for (Session* s : std::vector<Session*>(live_sessions_)) s->closeIfIdle();
  flushAccessLog();
  flushSpans();
}

void Worker::postSnapshot(std::shared_ptr<const Snapshot> snapshot) {
  loop_.post([this, snap = std::move(snapshot)]() mutable { installSnapshot(std::move(snap)); });
}

void Worker::postTls(size_t listener_index, std::shared_ptr<const tls::ServerContext> context) {
  loop_.post([this, listener_index, context = std::move(context)]() mutable {
    if (listener_index < tls_.size()) tls_[listener_index] = std::move(context);
  });
}

void Worker::postJwks(std::string url, std::shared_ptr<const auth::jwt::KeySet> keys) {
  loop_.post([this, url = std::move(url), keys = std::move(keys)] {
    auto update = [&](WorkerSnapshot& ws) {
      const auto& urls = ws.shared->jwks_urls;
      for (size_t i = 0; i < urls.size(); ++i) {
        if (urls[i] != url) continue;
        ws.jwks[i] = keys;
        // Tokens verified with a key that may be gone now are verified again.
        if (ws.token_cache) ws.token_cache->clear(static_cast<uint32_t>(i));
      }
    };
    update(*current_);
    for (auto& ws : retired_) update(*ws);
  });
}

void Worker::unknownKid(const std::string& url) {
  // The control thread rate-limits fetches; this only keeps a flood of bad tokens from turning
  // into a flood of messages to it.
  uint64_t now = loop_.nowMs();
  uint64_t& last = unknown_kid_sent_ms_[url];
  if (last != 0 && now - last < 1000) return;
  last = now;
  if (unknown_kid_) unknown_kid_(url);
}

void Worker::postDrain(uint64_t deadline_ms) {
  loop_.post([this, deadline_ms] {
    draining_ = true;
    drain_deadline_ms_ = deadline_ms;
    for (auto& a : acceptors_) {
      loop_.remove(a->fd());
      a->close();
    }
    closeIdleSessions();
    maybeFinishDrain();
  });
}

void Worker::installSnapshot(std::shared_ptr<const Snapshot> snapshot) {
  auto ws = std::make_unique<WorkerSnapshot>();
  ws->shared = std::move(snapshot);
  const Snapshot& snap = *ws->shared;
  tls_ = snap.tls;
  ws->jwks = snap.jwks;
  ws->clusters.reserve(snap.upstreams.size());
  applyObservability(snap.config);
  ws->route_metrics.assign(snap.routes.size(), nullptr);
  ws->upstream_metrics.assign(snap.upstreams.size(), nullptr);
  ws->endpoint_metrics.resize(snap.upstreams.size());
  for (size_t u = 0; u < snap.upstreams.size(); ++u) {
    const UpstreamRuntime& upstream = snap.upstreams[u];
    const bool endpoints_can_leave =
        upstream.config->health_check.has_value() || upstream.config->outlier.has_value();
    upstream::Cluster& cluster = ws->clusters.emplace_back(
        upstream.config->balancing, static_cast<uint32_t>(index_), &upstream.maglev,
        endpoints_can_leave ? upstream.health.get() : nullptr);
    for (size_t e = 0; e < upstream.addresses.size(); ++e) {
      auto& pool = pools_[upstream.endpoint_keys[e]];
      if (!pool) {
        pool = std::make_unique<upstream::EndpointPool>();
        pool->key = upstream.endpoint_keys[e];
        pool->address = upstream.addresses[e];
      }
      pool->idle_timeout_ms = static_cast<uint64_t>(upstream.config->timeouts.idle.count());
      pool->tls = upstream.tls;
      pool->http2 = upstream.config->speaksHttp2();
      pool->connect_timeout_ms = static_cast<uint64_t>(upstream.config->timeouts.connect.count());
      pool->tls_host = upstream.hosts[e];
      cluster.addEndpoint(pool.get(), upstream.config->endpoints[e].weight);
    }
  }
  if (current_ != nullptr) {
    if (current_->refs == 0) {
      retire(std::move(current_));
    } else {
      retired_.push_back(std::move(current_));
    }
  }
  ws->concurrency.assign(snap.routes.size(), nullptr);  // looked up on first use
  installRedis(snap);
  current_ = std::move(ws);
}

// Only for limits decided in Redis per request: batched ones have the sync thread's connection.
void Worker::installRedis(const Snapshot& snap) {
  const auto& redis = snap.config.redis;
  if (!redis || !snap.limiter->asksRedis()) {
    if (redis_) redis_->shutdown();
    return;
  }
  ratelimit::RedisSettings settings;
  settings.address = snap.redis_address;
  settings.address_text = redis->address;
  settings.password = redis->password;
  settings.timeout_ms = static_cast<uint64_t>(redis->timeout.count());
  if (redis_) {
    redis_->configure(std::move(settings));
  } else {
    redis_ = std::make_unique<ratelimit::RedisClient>(loop_, std::move(settings),
                                                      std::string(ratelimit::kRedisScript));
  }
}

WorkerSnapshot* Worker::acquireSnapshot() {
  ++current_->refs;
  return current_.get();
}

void Worker::releaseSnapshot(WorkerSnapshot* snap) {
  if (--snap->refs > 0 || snap == current_.get()) return;
  for (auto it = retired_.begin(); it != retired_.end(); ++it) {
    if (it->get() == snap) {
      retire(std::move(*it));
      retired_.erase(it);
      return;
    }
  }
}

void Worker::retire(std::unique_ptr<WorkerSnapshot> snap) {
  if (retire_) retire_(std::move(snap->shared));
}

uint64_t Worker::random() {
  // xorshift64*: fast, per worker, good enough for balancing and sampling.
  rng_state_ ^= rng_state_ >> 12;
  rng_state_ ^= rng_state_ << 25;
  rng_state_ ^= rng_state_ >> 27;
  return rng_state_ * 2685821657736338717ULL;
}

void Worker::newRequestId(char* out) {
  uint64_t a = random();
  uint64_t b = (static_cast<uint64_t>(index_) << 56) ^ ++request_counter_ ^ (random() << 24);
  writeHex16(a, out);
  writeHex16(b, out + 16);
}

void Worker::accept(size_t listener_index, int listen_fd) {
  const auto& limits = current_->shared->config.listeners[listener_index].limits;
  // One connection per readiness event: the listening socket is level-triggered, so epoll
  // reports it again while more are queued, and no accept4 is spent learning "no more" (EAGAIN).
  net::SocketAddress peer;
  peer.length = sizeof peer.storage;
  int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      LOG_WARN("accept: %s; pausing this listener for 100 ms", strerror(errno));
      acceptors_[listener_index]->pause();
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
               errno != ECONNABORTED) {
      LOG_WARN("accept: %s", strerror(errno));
    }
    return;
  }
  if (draining_ || live_sessions_.size() >= limits.max_connections) {
    ::close(fd);
    return;
  }
  Session* session = takeSession();
  session->in_live_list = true;
  session->live_index = live_sessions_.size();
  live_sessions_.push_back(session);
  active_connections.store(live_sessions_.size(), std::memory_order_relaxed);
  if (metrics_storage_ != nullptr) metrics_storage_->connections(listener_index).add(1);
  session->open(fd, peer, listener_index);
}

Session* Worker::takeSession() {
  if (!free_sessions_.empty()) {
    Session* session = free_sessions_.back();
    free_sessions_.pop_back();
    return session;
  }
  return sessions_.make(*this);
}

Session* Worker::newStreamSession(uint64_t budget) {
  if (stream_sessions_ >= budget) return nullptr;
  ++stream_sessions_;
  Session* session = takeSession();
  session->in_live_list = false;
  session->stream_session = true;
  return session;
}

void Worker::sessionClosed(Session* session) {
  if (session->stream_session) {
    session->stream_session = false;
    --stream_sessions_;
  }
  if (session->in_live_list) {
    size_t i = session->live_index;
    live_sessions_[i] = live_sessions_.back();
    live_sessions_[i]->live_index = i;
    live_sessions_.pop_back();
    active_connections.store(live_sessions_.size(), std::memory_order_relaxed);
    if (metrics_storage_ != nullptr) {
      metrics_storage_->connections(session->listenerIndex()).add(-1);
    }
    session->in_live_list = false;
  }
  // Not reusable before the batch ends: events for its old socket may still be queued.
  closing_sessions_.push_back(session);
}

upstream::Connection* Worker::acquireUpstream(upstream::EndpointPool& pool,
                                              upstream::ConnectionOwner* owner, bool& reused,
                                              uint32_t max_connections) {
  if (pool.http2) {
    reused = false;
    return acquireHttp2Stream(pool, owner, max_connections);
  }
  while (!pool.idle.empty()) {
    upstream::Connection* conn = pool.idle.back();
    pool.idle.pop_back();
    conn->owner = owner;
    reused = true;
    return conn;
  }
  reused = false;
  if (pool.open >= max_connections) {
    errno = EBUSY;
    return nullptr;
  }
  int fd = net::startConnect(pool.address);
  if (fd < 0) return nullptr;
  upstream::Connection* conn = takeConnection();
  conn->reset(fd, &pool, this);
  conn->owner = owner;
  ++pool.open;
  if (!loop_.add(fd, conn)) {
    int saved = errno;
    releaseUpstream(conn, false, 0);
    errno = saved;
    return nullptr;
  }
  return conn;
}

upstream::Connection* Worker::takeConnection() {
  if (!free_connections_.empty()) {
    upstream::Connection* conn = free_connections_.back();
    free_connections_.pop_back();
    return conn;
  }
  connections_.push_back(std::make_unique<upstream::Connection>());
  return connections_.back().get();
}

upstream::Connection* Worker::acquireHttp2Stream(upstream::EndpointPool& pool,
                                                 upstream::ConnectionOwner* owner,
                                                 uint32_t max_connections) {
  upstream::Http2ClientConnection* chosen = nullptr;
  for (auto& c : pool.h2) {
    if (c->hasRoom()) {
      chosen = c.get();
      break;
    }
  }
  if (chosen == nullptr && pool.h2.size() >= max_connections) {
    errno = EBUSY;
    return nullptr;
  }
  if (chosen == nullptr) {
    auto connection = std::make_unique<upstream::Http2ClientConnection>(*this, pool);
    if (!connection->open(pool.connect_timeout_ms)) return nullptr;
    chosen = connection.get();
    pool.h2.push_back(std::move(connection));
  }
  upstream::Connection* conn = takeConnection();
  conn->reset(-1, &pool, this);
  conn->owner = owner;
  chosen->attach(*conn);
  return conn;
}

void Worker::http2ConnectionClosed(upstream::Http2ClientConnection& connection) {
  auto& list = connection.pool().h2;
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->get() == &connection) {
      closed_http2_.push_back(std::move(*it));
      list.erase(it);
      return;
    }
  }
}

void Worker::releaseUpstream(upstream::Connection* conn, bool reusable, uint32_t max_idle) {
  if (conn->fd < 0) {  // a stream connection: the stream ends, the HTTP/2 connection stays
    if (conn->h2 != nullptr) conn->h2->release(*conn);
    conn->owner = nullptr;
    conn->resetTimerState();
    closing_connections_.push_back(conn);
    return;
  }
  conn->owner = nullptr;
  upstream::EndpointPool& pool = *conn->pool;
  if (reusable && !draining_ && pool.idle.size() < max_idle) {
    conn->in.clear();
    conn->out.clear();
    loop_.setTimeout(*conn, pool.idle_timeout_ms);
    pool.idle.push_back(conn);
    // Data or EOF may have arrived already; the edge for it would be lost.
    if (conn->readable) idleConnectionLost(*conn);
    return;
  }
  conn->tls.close();
  ::close(conn->fd);  // also takes it out of the epoll set
  conn->fd = -1;
  --pool.open;
  conn->resetTimerState();
  closing_connections_.push_back(conn);
}

void Worker::idleConnectionLost(upstream::Connection& conn) {
  auto& idle = conn.pool->idle;
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if (*it == &conn) {
      idle.erase(it);
      releaseUpstream(&conn, false, 0);
      return;
    }
  }
}

void Worker::afterBatch() {
  // HTTP/2 connections whose streams produced output meanwhile. A drive may ask for more.
  for (int round = 0; (!deferred_drives_.empty() || !deferred_flushes_.empty()) && round < 1000;
       ++round) {
    // The lists are swapped with emptied ones, so their capacity serves the next batch.
    drive_batch_.clear();
    drive_batch_.swap(deferred_drives_);
    for (Session* s : drive_batch_) s->runDeferredDrive();
    flush_batch_.clear();
    flush_batch_.swap(deferred_flushes_);
    for (auto* c : flush_batch_) c->flush();
  }
  if (redis_ && redis_->needsFlush()) redis_->flush();
  std::erase_if(closed_http2_, [](const auto& c) { return c->streamCount() == 0; });
  for (Session* s : closing_sessions_) free_sessions_.push_back(s);
  closing_sessions_.clear();
  for (auto* c : closing_connections_) free_connections_.push_back(c);
  closing_connections_.clear();
  maybeFlushAccessLog();
  flushSpans();
  if (draining_) maybeFinishDrain();
}

void Worker::maybeFlushAccessLog() {
  constexpr size_t kFlushBytes = 32 * 1024;
  constexpr uint64_t kFlushMs = 100;
  if (access_log_buffer_.empty()) return;
  const uint64_t now = loop_.nowMs();
  if (access_log_since_ms_ == 0) {
    access_log_since_ms_ = now;
    loop_.setTimeout(access_log_flush_, kFlushMs);
  }
  if (access_log_buffer_.size() >= kFlushBytes || now - access_log_since_ms_ >= kFlushMs) {
    flushAccessLog();
  }
}

void Worker::flushAccessLog() {
  access_log_since_ms_ = 0;
  if (access_log_buffer_.empty()) return;
  access_log_->write(access_log_buffer_.view());
  access_log_buffer_.clear();
  // A burst's lines are not kept: the buffer goes back to a modest size.
  if (access_log_buffer_.capacity() > 256 * 1024) access_log_buffer_ = Buffer();
}

void Worker::closeIdleSessions() {
  for (Session* s : std::vector<Session*>(live_sessions_)) s->closeIfIdle();
}

void Worker::maybeFinishDrain() {
  closeIdleSessions();
  if (live_sessions_.empty() || loop_.nowMs() >= drain_deadline_ms_) loop_.stop();
}

}  // namespace portico::proxy
