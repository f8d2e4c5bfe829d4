#pragma once
// One downstream HTTP/1.1 connection and the request it is carrying. Requests on a connection
// are handled one at a time, so pipelined requests are answered in order; the next one is parsed
// from the buffer once the current response is complete. Bodies stream both ways without being
// buffered whole: bytes are written from the buffer they were read into, and reading stops while
// the other side cannot take more (backpressure).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/buffer.hpp"
#include "filters/environment.hpp"
#include "filters/filter.hpp"
#include "http/http1_parser.hpp"
#include "http/local_reply.hpp"
#include "net/event_loop.hpp"
#include "net/socket.hpp"
#include "proxy/request_state.hpp"
#include "proxy/snapshot.hpp"
#include "ratelimit/limiter.hpp"
#include "ratelimit/redis_client.hpp"
#include "router/router.hpp"
#include "tls/stream.hpp"
#include "upstream/connection.hpp"

namespace portico::auth {
struct Identity;
}
namespace portico::tls {
class ServerContext;
struct PeerCertificate;
}

namespace portico::proxy {

class Worker;
struct WorkerSnapshot;
class Http2Connection;
struct Http2Stream;

// Whether `address` is inside one of `cidrs` (trusted_proxies).
bool inCidrs(const std::vector<config::Cidr>& cidrs, const net::SocketAddress& address);

// Whether a plain connection starts with HTTP/2's client preface (RFC 9113 §3.4).
enum class PrefaceMatch : uint8_t { No, Partial, Complete };
PrefaceMatch matchHttp2Preface(std::string_view data);

class Session final : public net::EventHandler,
                      public net::Timed,
                      public upstream::ConnectionOwner,
                      public ratelimit::RedisWaiter,
                      public filters::FilterCallbacks,
                      public filters::StreamEnvironment {
 public:
  explicit Session(Worker& worker);
  ~Session() override;

  // Starts serving an accepted socket.
  void open(int fd, const net::SocketAddress& peer, size_t listener_index);
  // Starts serving one HTTP/2 stream of `parent`'s connection (a stream session: it reads the
  // request from, and writes the response to, the stream instead of a socket).
  void openStream(Session& parent, Http2Stream& stream);
  // Called on drain: closes the connection now if it is between requests.
  void closeIfIdle();
  size_t listenerIndex() const { return listener_index_; }

  // --- HTTP/2 ---
  // On a connection: a new stream session for `stream`, taken from the worker's pool; null when
  // the worker's budget of stream sessions is spent.
  Session* startStreamSession(Http2Stream& stream);
  // On a connection: run drive() now, or after the current one if it is running.
  void requestDrive();
  // Run by the worker after a batch of events for a requestDrive() made meanwhile.
  void runDeferredDrive();
  // On a stream session: the stream has bytes to read or room to write.
  void onStreamReady();
  // On a stream session: the client reset the stream, or the connection is going away.
  void abortStream();
  bool drive_deferred = false;
  bool in_live_list = false;
  bool stream_session = false;  // counted against the worker's stream budget

  void onEvents(uint32_t events) override;
  void onTimer() override;
  void onUpstreamEvents(upstream::Connection& conn, uint32_t events) override;
  void onUpstreamTimeout(upstream::Connection& conn) override;
  // A Redis answer for the current request's waiting filter (callRedis), passed on to it.
  void onRedisReply(uint32_t tag, const redisReply* reply) override;
  // The current request's filters (filters/filter.hpp): an answer, or going on after a pause.
  void reply(const filters::Reply& reply) override;
  void resume() override;
  filters::StreamEnvironment* environment() override { return this; }
  // filters::StreamEnvironment (the connection's certificate is looked up once).
  const tls::PeerCertificate* clientCertificate() override;
  auth::Identity& identity() override;
  void markAuthenticated() override;
  net::EventLoop& loop() override;
  std::shared_ptr<const void> holdSnapshot() override;
  auth::TokenCache* tokenCache() override;
  const std::vector<std::shared_ptr<const auth::jwt::KeySet>>* fetchedKeys() override;
  void unknownKid(uint32_t provider) override;
  auth::VerifyPool* verifyPool(bool hashing) override;
  bool authenticated() const override;
  std::string_view limitClientKey(std::string& scratch) override;
  void editUpstreamRequest(const http::FieldEdits& edits) override;
  void limitRequestBody(uint64_t max_bytes) override;
  std::string& upstreamFields() override;
  ratelimit::LimitScratch& limitScratch() override;
  void countAuthFailure(std::string_view provider, std::string_view reason) override;
  void countRateLimited(std::string_view key) override;
  std::atomic<int64_t>& concurrencyCounter(uint32_t route, const std::string& name) override;
  ratelimit::LocalStore& localStore() override;
  ratelimit::SyncStore& syncStore() override;
  bool callRedis(std::span<const std::string_view> keys, std::span<const std::string_view> args,
                 ratelimit::RedisWaiter& waiter) override;
  void resumeAt(uint64_t at_ms) override;

  size_t live_index = 0;  // position in the worker's live list

 private:
  // Handshake: TLS is being set up. Flush: the last response is being written, then the
  // connection closes.
  // Http2: the connection speaks HTTP/2; its streams are served by stream sessions.
  // FilterWait: one of the route's filters paused the request (StopIteration: a slow
  // authentication check, Redis's answer for the rate limits, a delay); nothing is read
  // meanwhile (the request head's views into in_ must stay valid).
  enum class State : uint8_t { Handshake, ReadHead, FilterWait, Proxy, Flush, Http2, Closed };
  static constexpr size_t kMaxBodyBuffer = 64 * 1024;  // per direction, while streaming bodies
  static constexpr size_t kInBuffer = 16 * 1024;   // what a connection reads into, at first
  static constexpr size_t kOutBuffer = 4 * 1024;   // what responses heads are built in

  // The main loop: makes all the progress the sockets allow, then returns.
  void drive();
  bool continueHandshake();
  bool clientGone();
  // Switches the connection to HTTP/2 (ALPN h2, prior knowledge, or an h2c upgrade).
  void startHttp2(std::string_view upgrade_settings = {},
                  const http::RequestHead* upgrade = nullptr);
  bool driveHttp2();
  bool tryH2cUpgrade(size_t head_end);
  // The client socket, through TLS when the listener has it; the syscalls' conventions.
  ssize_t readSocket(void* data, size_t size);
  ssize_t writeSocket(const iovec* iov, int count);
  bool readClient();
  bool writeClient();
  bool tryStartRequest();
  void startRequest(size_t head_end);
  bool startStreamRequest();
  // The request's head is read: from its first check to the route's filters and the upstream.
  void serveRequest();
  http::RequestLimits requestLimits() const;
  // Answers a request whose head was refused (400, 414 or 431).
  void refuseHead(http::ParseError error);
  void dispatch(const RouteRuntime& route, const router::MatchResult& match);
  // Transcoded and gRPC-Web requests (session_grpc.cpp). False when the request was answered.
  bool startGrpcCall(const RouteRuntime& route);
  // Reads the body into the call, then sends the call upstream.
  bool collectGrpcBody();
  // The upstream's answer as the call turns it into the client's (read()'s conventions).
  ssize_t readGrpcCall(upstream::Connection& up, char* to, size_t want);
  void connectUpstream();
  // What consistent_hash hashes for this request (`scratch` may hold it).
  std::string_view balancingKey(const config::HashOn& hash_on, std::string& scratch);
  bool scanRequestBody();
  bool sendRequestBody();
  bool pumpEcho();
  bool scanResponseBody();
  bool tryStaleRetry();
  void armUpstreamTimer();
  // `timeout_ms`, or less to end at the route's timeout or the request's gRPC deadline.
  uint64_t withinDeadline(uint64_t timeout_ms) const;
  bool readUpstream();
  bool continueUpstreamHandshake();
  bool processResponseHead();
  void startTunnel(size_t head_end);
  bool responseFinished() const;
  bool upstreamTruncated() const;
  // The request's state is made (start time: now) and destroyed, with what it holds given back.
  void beginRequest();
  void endRequest(bool upstream_reusable);
  void finishRequest();
  void upstreamFailed(http::ErrorCode code, const char* message);
  // An answer of ours ends the connection when the rest of the request body is still coming.
  bool closesAfterReply() const { return !rq_->req_body_done || close_after_response_; }
  // The upstream's resilience policies (session_resilience.cpp).
  enum class RetryCondition : uint8_t { None, ConnectFailure, Reset, Timeout, Status };
  // The circuit breaker lets the request through (false: answered 503), the retry budget counts it.
  bool admitToUpstream();
  // Body bytes about to be sent upstream, kept while they fit the replay buffer.
  void keepForReplay(const char* data, size_t size);
  RetryCondition retryConditionOf(http::ErrorCode code) const;
  // True when the failed try is made again (at once or after its backoff); false: the failure
  // is the client's answer.
  bool tryRetry(RetryCondition condition);
  void noteFailedTry(RetryCondition condition, uint64_t now_ms);
  void retryAfterBackoff();
  // The circuit breaker and outlier ejection learn how the exchange went: at the response head,
  // or at the end for one that failed or was abandoned before a head (once either way).
  void recordUpstreamOutcome();
  void replyError(http::ErrorCode code, std::string_view message, bool close,
                  std::string_view allow = {}, std::string_view www_authenticate = {});
  // A bodiless answer of the gateway's (a CORS preflight's 204).
  void replyEmpty(int status, bool close);
  void endWithLocalReply(bool close);
  // Writes an answer of the gateway's: as HTTP/1.1 text into out_, or on a stream as fields.
  void writeReply(const std::function<void(http::ReplyWriter&)>& write);
  // The peer, or behind trusted_proxies the rightmost X-Forwarded-For address not one of them.
  net::SocketAddress clientAddress() const;
  // A gRPC request: its errors are gRPC answers, and its grpc-timeout a deadline.
  void noteGrpc();
  void routePreflight(std::string_view announced, router::RequestView view,
                      router::MatchResult& match);
  // The route's filters' request phase; false when one answered or paused the request.
  bool runRequestFilters(const router::MatchResult& match);

  // The route's filters' response phase over a head of this status: their fields go into
  // filter_headers; returns the upstream's fields they leave out (lowercased, sorted), or null.
  const std::vector<std::string>* runResponseFilters(int status, bool from_upstream);
  // The request passed its filters: the body limit, then the upstream.
  void admit(const RouteRuntime& route, const router::MatchResult& match);
  void serveEcho();
  void buildUpstreamHead();
  void buildClientResponseHead(const http::ResponseHead& head);
  size_t requestBodyReady();
  size_t responseBodyReady();
  void consumeResponseBody(size_t n);
  void writeAccessLog();
  // Observability (session_observability.cpp): the trace context read or started, the
  // request's metrics and its span, when the request ends.
  // `fresh_request_id`: the request id was made here, random, and serves as a new trace's id.
  void startTrace(bool fresh_request_id);
  void recordMetrics();
  void exportSpan();
  void close();
  // The last response is written: close, or first linger when the client may still be sending.
  void finishFlush();
  void detachUpstream(bool reusable);
  void armClientTimer();
  void armIdleTimer();
  // A connection idle between requests for kBufferHoldMs holds no buffer: they go back to the
  // thread's pool (not at once: a keep-alive client's next request usually comes sooner).
  static constexpr uint64_t kBufferHoldMs = 200;
  bool holdsBuffers() const;
  void releaseIdleBuffers();
  const config::Listener& listener() const;

  Worker& worker_;
  int fd_ = -1;
  tls::Stream tls_;
  bool secure_ = false;  // the client connection is TLS (also for stream sessions)
  std::unique_ptr<Http2Connection> h2_;  // on an HTTP/2 connection
  Http2Stream* stream_ = nullptr;        // on a stream session, until it is done
  Session* parent_ = nullptr;            // on a stream session: the connection
  std::shared_ptr<const tls::ServerContext> tls_context_;  // held until the handshake is done
  std::unique_ptr<tls::PeerCertificate> client_cert_;
  bool client_cert_checked_ = false;
  bool client_cert_verified_ = false;
  uint64_t accepted_ms_ = 0;
  uint64_t idle_since_ms_ = 0;  // when the connection last went idle between requests
  size_t listener_index_ = 0;
  net::SocketAddress peer_;
  char peer_text_[64] = {};
  size_t peer_len_ = 0;
  State state_ = State::Closed;
  bool in_drive_ = false;
  bool drive_again_ = false;
  bool readable_ = false;
  bool writable_ = false;
  bool peer_eof_ = false;
  bool rdhup_ = false;  // the peer shut down its side: read until EOF, not until a short read
  bool linger_ = false;     // close with a lingering read (the client may still be sending)
  bool lingering_ = false;  // our side is shut down; reading until EOF or kLingerMs
  size_t linger_bytes_ = 0;
  uint64_t head_started_ms_ = 0;
  bool close_after_response_ = false;
  size_t head_scanned_ = 0;

  Buffer in_;
  Buffer out_;

  // --- the current request: exists from its first byte to the end of its exchange ---
  RequestHandle rq_;
  uint32_t redis_generation_ = 0;  // tags callRedis: a late answer matches no waiting filter
};

}  // namespace portico::proxy
