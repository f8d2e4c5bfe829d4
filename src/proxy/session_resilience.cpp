// The upstream's resilience policies as one request meets them (docs/resilience.md): the circuit
// breaker's admission, retries with backoff and a budget, the body kept for a replay, and the
// outcome each policy learns from when the exchange ends.
#include <algorithm>

#include "core/clock.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"
#include "upstream/cluster.hpp"

namespace portico::proxy {
namespace {

// RFC 9110 §9.2.2.
bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

}  // namespace

bool Session::admitToUpstream() {
  const UpstreamRuntime& upstream = rq_->snap->shared->upstreams[rq_->upstream_index];
  const config::Upstream& settings = *upstream.config;
  const uint64_t now = worker_.loop().nowMs();
  if (settings.circuit_breaker) {
    using Admission = upstream::CircuitBreakerState::Admission;
    const Admission admission = upstream.health->breaker().admit(*settings.circuit_breaker, now);
    if (admission == Admission::Refused) {
      replyError(http::ErrorCode::Unavailable, "circuit open", closesAfterReply());
      return false;
    }
    rq_->breaker_passed = true;
    rq_->breaker_probe = admission == Admission::Probe;
  }
  if (settings.retry) {
    upstream.health->retryBudget().deposit(now);
    // A body is kept only for a request that may be retried.
    rq_->replay_overflow = settings.retry->attempts <= 1 ||
                           (!settings.retry->non_idempotent && !isIdempotent(rq_->method));
  } else {
    rq_->replay_overflow = true;
  }
  return true;
}

void Session::keepForReplay(const char* data, size_t size) {
  if (rq_->replay_overflow) return;
  const auto& retry = rq_->snap->shared->upstreams[rq_->upstream_index].config->retry;
  // The bound is on the body, not its chunk framing: the decoder knows the body's size so far.
  const uint64_t body_bytes = rq_->req_framing == http::BodyFraming::Chunked
                                  ? rq_->req_chunked.announcedBytes()
                                  : rq_->replay_body.size() + size;
  if (body_bytes > retry->replay_buffer) {
    rq_->replay_overflow = true;  // once any of it is sent, this request is not sent again
    rq_->replay_body.clear();
    return;
  }
  rq_->replay_body.append(data, size);
}

Session::RetryCondition Session::retryConditionOf(http::ErrorCode code) const {
  const bool connecting = rq_->up == nullptr || rq_->up->connecting || rq_->up->handshaking;
  switch (code) {
    case http::ErrorCode::BadUpstream:
      return connecting ? RetryCondition::ConnectFailure : RetryCondition::Reset;
    case http::ErrorCode::UpstreamTimeout: {
      // The time the client allowed is spent: another try could only fail the same way.
      if (rq_->deadlinePassed(worker_.loop().nowMs()) || !rq_->req_body_done) {
        return RetryCondition::None;
      }
      return connecting ? RetryCondition::ConnectFailure : RetryCondition::Timeout;
    }
    default:
      return RetryCondition::None;
  }
}

bool Session::tryRetry(RetryCondition condition) {
  const UpstreamRuntime& upstream = rq_->snap->shared->upstreams[rq_->upstream_index];
  const auto& policy = upstream.config->retry;
  if (!policy || condition == RetryCondition::None || rq_->attempt + 1u >= policy->attempts ||
      rq_->replay_overflow || rq_->upgrade || rq_->resp_head_done) {
    return false;
  }
  const bool wanted = condition == RetryCondition::ConnectFailure ? policy->on_connect_failure
                      : condition == RetryCondition::Reset        ? policy->on_reset
                      : condition == RetryCondition::Timeout      ? policy->on_timeout
                                                                  : true;  // a status: asked
  if (!wanted) return false;
  const uint64_t now = worker_.loop().nowMs();
  observability::UpstreamMetrics* metrics =
      worker_.hasMetricsStorage() ? &worker_.upstreamMetrics(*rq_->snap, rq_->upstream_index)
                                  : nullptr;
  if (!upstream.health->retryBudget().withdraw(policy->budget, now)) {
    if (metrics != nullptr) metrics->retries_refused.add();
    return false;
  }
  if (metrics != nullptr) metrics->retries_sent.add();
  noteFailedTry(condition, now);
  rq_->failed_endpoint = rq_->endpoint_index;
  if (rq_->up != nullptr) detachUpstream(false);
  ++rq_->attempt;
  // Exponential backoff with full jitter: uniform in [0, min(max, base × 2^(n-1))].
  const auto base = static_cast<uint64_t>(policy->backoff_base.count());
  const auto cap = std::min(static_cast<uint64_t>(policy->backoff_max.count()),
                            base << std::min<uint32_t>(rq_->attempt - 1u, 30));
  const uint64_t wait = worker_.random() % (cap + 1);
  if (wait == 0) {
    connectUpstream();
  } else {
    rq_->retry_at_ms = now + wait;  // Session::onTimer goes on from here
  }
  return true;
}

// The endpoint of a try that will be made again learns of its failure now: the request's own
// outcome, at its end, is the last try's.
void Session::noteFailedTry(RetryCondition condition, uint64_t now_ms) {
  const UpstreamRuntime& upstream = rq_->snap->shared->upstreams[rq_->upstream_index];
  if (upstream.config->outlier) {
    upstream.health->recordOutcome(*upstream.config->outlier, rq_->endpoint_index, true, now_ms);
  }
  if (rq_->endpoint_metrics != nullptr) {
    using observability::UpstreamOutcome;
    const UpstreamOutcome outcome =
        condition == RetryCondition::ConnectFailure ? UpstreamOutcome::ConnectFailure
        : condition == RetryCondition::Timeout      ? UpstreamOutcome::Timeout
        : condition == RetryCondition::Reset        ? UpstreamOutcome::Reset
                                             : observability::outcomeOfStatus(rq_->up->head.status);
    rq_->endpoint_metrics->outcomes[static_cast<size_t>(outcome)].add();
  }
}

void Session::retryAfterBackoff() {
  rq_->retry_at_ms = 0;
  connectUpstream();
  drive();
}

void Session::recordUpstreamOutcome() {
  RequestState& rq = *rq_;
  if (rq.snap == nullptr || !rq.upstream_chosen || rq.echo || rq.outcome_recorded) return;
  const UpstreamRuntime& upstream = rq.snap->shared->upstreams[rq.upstream_index];
  const config::Upstream& settings = *upstream.config;
  if (!settings.circuit_breaker && !settings.outlier) return;
  // Known only when the upstream answered or failed; not when the client left first.
  const bool known = rq.upstream_failed
                         ? rq.upstream_failure != observability::UpstreamOutcome::Cancelled
                         : rq.upstream_head_us != 0;
  const uint64_t now = worker_.loop().nowMs();
  rq.outcome_recorded = true;
  if (!known) {
    if (rq.breaker_probe) upstream.health->breaker().abandonProbe();
    return;
  }
  const bool failed = rq.upstream_failed || rq.status >= 500;
  if (settings.circuit_breaker && rq.breaker_passed) {
    upstream.health->breaker().record(*settings.circuit_breaker, failed, rq.breaker_probe, now);
  }
  if (settings.outlier && rq.upstream_start_us != 0 &&
      rq.endpoint_index < upstream.health->size()) {
    upstream.health->recordOutcome(*settings.outlier, rq.endpoint_index, failed, now);
  }
}

}  // namespace portico::proxy
