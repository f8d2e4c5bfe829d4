#pragma once
// What one request on a session owns. A session makes one when the first byte of a request is
// taken up and destroys it when the exchange ends, however it ends: answered, refused, or cut by
// either side. So no exit path can leave a field behind for the next request that the same
// (pooled) session object serves: not a route, not an identity, not a request id (review C1).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/arena.hpp"
#include "core/buffer.hpp"
#include "filters/chain.hpp"
#include "http/field_edits.hpp"
#include "http/http1_parser.hpp"
#include "observability/metrics.hpp"
#include "ratelimit/limiter.hpp"
#include "router/router.hpp"

namespace portico::auth {
struct Identity;
}
namespace portico::upstream {
struct Connection;
}
namespace portico::transcode {
class GrpcCall;
}

namespace portico::proxy {

struct WorkerSnapshot;
struct RouteRuntime;

// Containers that a request fills and the next one overwrites from the start, kept for their
// capacity (the parse of a head, the head sent upstream, the limits' keys, the strings) so that
// a request allocates nothing for them. RequestState's constructor empties the strings.
struct RequestScratch {
  http::RequestHead head;  // views into the session's in_
  Buffer upstream_head;    // the request head as sent upstream (kept for the stale retry)
  std::string method;
  std::string host;            // lowercased, without port
  std::string path;            // normalized (what the access log shows)
  std::string forward_target;  // rewritten path + "?" + query
  std::string extra_headers;   // for the local reply or response head
  std::string filter_headers;  // the route's filters' fields for the response, whoever makes it
  std::string upstream_fields;  // the route's filters' fields for the upstream request
  std::string echo_body;
  std::string replay_body;  // the request body sent so far, kept for a retry
  ratelimit::LimitScratch limits;
  Arena arena{512};                     // the request's filters; reset when the request ends
  filters::RequestInfo filter_request;  // what the filters read (kept while one pauses)
};

struct RequestState {
  RequestState(uint64_t now_us, RequestScratch& scratch);
  ~RequestState();
  RequestState(const RequestState&) = delete;
  RequestState& operator=(const RequestState&) = delete;

  RequestScratch& scratch;
  http::RequestHead& head;
  Buffer& upstream_head;
  std::string& method;
  std::string& host;
  std::string& path;
  std::string& forward_target;
  std::string& extra_headers;  // for the local reply or response head
  std::string& filter_headers;
  std::string& upstream_fields;
  std::string& echo_body;
  std::string& replay_body;

  // The snapshot (refcounted) and the upstream connection are the worker's: the session gives
  // them back before it destroys the state (Session::endRequest).
  WorkerSnapshot* snap = nullptr;
  const RouteRuntime* route = nullptr;
  bool upstream_chosen = false;  // dispatched: upstream_index names where it goes
  uint32_t upstream_index = 0;
  uint32_t endpoint_index = 0;
  upstream::Connection* up = nullptr;
  observability::EndpointMetrics* endpoint_metrics = nullptr;  // of endpoint_index, when chosen
  bool up_reused = false;
  bool retried = false;  // the stale-connection retry was used
  // The upstream's retry policy (docs/resilience.md).
  uint8_t attempt = 0;           // tries made before the current one
  bool replay_overflow = false;  // the body outgrew replay_buffer: no retry once it was sent
  uint32_t failed_endpoint = UINT32_MAX;  // the endpoint the last try failed at
  uint64_t retry_at_ms = 0;               // backing off until then (loop time); 0: not backing off
  // A small body is read whole before the upstream is connected: a slow upload never holds an
  // upstream connection (review M2).
  bool awaiting_body = false;
  uint64_t balancing_hash = 0;  // consistent_hash's key, hashed while the head's views are valid
  bool breaker_passed = false;            // the circuit breaker let it through: its outcome counts
  bool breaker_probe = false;             // ... as one of the half-open probes
  bool outcome_recorded = false;          // the breaker and outlier ejection heard how it went

  size_t request_id_len = 0;
  bool version_1_0 = false;
  bool keep_alive_1_0 = false;
  bool grpc = false;  // content-type application/grpc*: errors are answered the gRPC way
  // ... with this content-type (gRPC-Web's for a gRPC-Web request).
  std::string_view grpc_reply_type = "application/grpc";
  uint64_t grpc_deadline_ms = 0;  // from grpc-timeout (loop time); 0: none
  uint64_t route_deadline_ms = 0;  // the route's `timeout` from dispatch (loop time); 0: none
  // The earlier of the two (0: none), and whether it has come.
  uint64_t deadlineMs() const {
    if (route_deadline_ms == 0) return grpc_deadline_ms;
    if (grpc_deadline_ms == 0) return route_deadline_ms;
    return std::min(route_deadline_ms, grpc_deadline_ms);
  }
  bool deadlinePassed(uint64_t now_ms) const {
    const uint64_t deadline = deadlineMs();
    return deadline != 0 && now_ms >= deadline;
  }
  // A REST/JSON request transcoded to gRPC, or a gRPC-Web one (session_grpc.cpp): its body is
  // read whole (awaiting_body) and the upstream's answer is read through it.
  std::unique_ptr<transcode::GrpcCall> grpc_call;
  size_t grpc_body_sent = 0;  // of its body (replay_body), on the current try
  // A WebSocket upgrade was asked for; after the upstream's 101 the connection is a tunnel.
  bool upgrade = false;

  filters::FilterChain chain;  // the route's filters, made for this request

  bool authenticated = false;
  std::unique_ptr<auth::Identity> identity;  // made by the first auth check

  // While a filter waits: for Redis's answer (who gets it), or until a time (loop ms).
  ratelimit::RedisWaiter* redis_waiter = nullptr;
  const http::FieldEdits* upstream_edits = nullptr;  // the route's, set by its filters
  uint64_t resume_at_ms = 0;

  bool echo = false;
  uint64_t echo_body_bytes = 0;

  http::BodyFraming req_framing = http::BodyFraming::None;
  uint64_t req_remaining = 0;  // Length: body bytes not yet sent
  http::ChunkedDecoder req_chunked;
  size_t req_validated = 0;    // Chunked: bytes at the front of in_ checked and ready
  size_t req_scanned = 0;      // Chunked: bytes at the front of in_ the decoder has seen
  size_t req_trailer_bytes = 0;  // Chunked: trailer fields seen, held back to be dropped
  bool keep_req_trailers = false;  // the upstream speaks HTTP/2: trailers go on
  bool req_body_done = true;
  uint64_t max_body = 0;

  bool resp_head_done = false;
  bool resp_dechunk = false;   // HTTP/1.0 client, chunked upstream: decode into out_
  http::BodyFraming resp_framing = http::BodyFraming::None;
  uint64_t resp_remaining = 0;
  http::ChunkedDecoder resp_chunked;
  size_t resp_validated = 0;
  size_t resp_scanned = 0;
  bool upstream_reusable = false;
  int status = 0;
  bool finished = false;  // the response was complete (not cut): what the complete phase hears

  // W3C trace context: `traced` when the gateway propagates it; the ids are below.
  bool traced = false;
  bool trace_has_parent = false;  // the client sent a valid traceparent
  uint8_t trace_flags = 0;
  // How the upstream exchange failed, when it did (the metrics' outcome).
  bool upstream_failed = false;
  observability::UpstreamOutcome upstream_failure = observability::UpstreamOutcome::Reset;

  uint64_t start_us = 0;
  uint64_t upstream_start_us = 0;
  uint64_t upstream_connected_us = 0;
  uint64_t upstream_head_us = 0;
  uint64_t end_us = 0;  // read once when the exchange ends, for the log and the metrics
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;

  // Last, after the fields that are zeroed, and not zeroed themselves:
  char request_id[129];  // request_id_len bytes of it
  char trace_id[32];     // lowercase hex, when traced
  char span_id[16];      // the gateway's span: the upstream's parent-id
  char trace_parent_id[16];  // the client's, when trace_has_parent
  // The route match while auth or limits wait (optional: its 560 bytes are not zeroed).
  std::optional<router::MatchResult> pending_match;
};

// Where a session's requests live: one RequestState at a time, made in place when a request
// starts and destroyed in place when it ends, beside the scratch it uses. The storage stays
// with the session while it serves requests and goes back to a per-thread pool when the
// connection idles (with its buffers), so neither a request nor an idle connection allocates.
class RequestHandle {
 public:
  RequestHandle();
  ~RequestHandle();
  RequestHandle(const RequestHandle&) = delete;
  RequestHandle& operator=(const RequestHandle&) = delete;

  explicit operator bool() const { return slot_ != nullptr && slot_->state.has_value(); }
  RequestState* operator->() { return &*slot_->state; }
  const RequestState* operator->() const { return &*slot_->state; }
  RequestState& operator*() { return *slot_->state; }
  const RequestState& operator*() const { return *slot_->state; }

  void emplace(uint64_t now_us) {
    if (!slot_) takeStorage();
    slot_->state.emplace(now_us, slot_->scratch);
  }
  // Destroys the request's state; the storage stays for the next request.
  void reset();
  bool holdsStorage() const { return slot_ != nullptr; }
  // Gives the storage back to the thread's pool (only between requests).
  void releaseStorage();

 private:
  struct Slot {
    RequestScratch scratch;
    std::optional<RequestState> state;
  };
  static std::vector<std::unique_ptr<Slot>>& pool();  // this thread's
  void takeStorage();
  std::unique_ptr<Slot> slot_;
};

}  // namespace portico::proxy
