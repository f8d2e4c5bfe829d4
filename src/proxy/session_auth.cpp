// The auth step of a session: the route's providers, then authorize; checks too slow for the
// worker (password hashes, token introspection) go to the verify pool and come back here.
#include <ctime>
#include <string_view>

#include "auth/authenticator.hpp"
#include "auth/verify_pool.hpp"
#include "config/cidr.hpp"
#include "core/siphash.hpp"
#include "proxy/session.hpp"
#include "proxy/worker.hpp"

namespace portico::proxy {

Session::AuthStep Session::checkAuth(const RouteRuntime& route, bool has_body) {
  const auth::Authenticator& authenticator = *rq_->snap->shared->auth;
  if (!rq_->identity) rq_->identity = std::make_unique<auth::Identity>();
  if (!rq_->snap->token_cache) rq_->snap->token_cache = authenticator.makeCache();
  const tls::PeerCertificate* client_cert =
      authenticator.needsClientCertificate(route.auth_providers) ? clientCertificate() : nullptr;
  auth::AuthResult result = authenticator.authenticate(
      route.auth_providers, rq_->head.headers, rq_->head.query, static_cast<int64_t>(time(nullptr)),
      rq_->snap->token_cache.get(), *rq_->identity, client_cert, &rq_->snap->jwks);
  if (result.unknown_kid_provider >= 0) {
    worker_.unknownKid(rq_->snap->shared->jwks_urls[result.unknown_kid_provider]);
  }
  if (result.outcome == auth::AuthOutcome::Pending) {
    startSlowCheck(std::move(result), has_body);
    return AuthStep::Pending;
  }
  return finishAuth(route, has_body, std::move(result)) ? AuthStep::Passed : AuthStep::Refused;
}

bool Session::finishAuth(const RouteRuntime& route, bool has_body, auth::AuthResult result) {
  const auth::Authenticator& authenticator = *rq_->snap->shared->auth;
  if (result.outcome == auth::AuthOutcome::Ok && route.config->authorize) {
    result = authenticator.authorize(*route.config->authorize, *rq_->identity);
  }
  if (result.outcome == auth::AuthOutcome::Ambiguous) {
    replyError(http::ErrorCode::BadRequest, result.message, true);
    return false;
  }
  if (result.outcome == auth::AuthOutcome::Unavailable) {
    replyError(http::ErrorCode::Unavailable, result.message, has_body);
    return false;
  }
  if (result.outcome == auth::AuthOutcome::Unauthenticated) {
    replyError(http::ErrorCode::Unauthenticated, result.message, has_body, {},
               result.www_authenticate);
    return false;
  }
  if (result.outcome == auth::AuthOutcome::Forbidden) {
    replyError(http::ErrorCode::Forbidden, result.message, has_body);
    return false;
  }
  rq_->authenticated = true;
  return true;
}

namespace {

// Whose share of a verify pool's queue a check takes: the client's address, IPv6 by its /64 (a
// client holds a whole /64 as easily as one address).
uint64_t verifyQueueKey(const net::SocketAddress& peer) {
  const auto bytes = peer.asV6Bytes();
  const bool v4 = config::isIpv4Mapped(bytes);
  const std::string_view key(reinterpret_cast<const char*>(bytes.data()), v4 ? 16 : 8);
  return sipHash<1, 3>(processSipKey(), key);
}

}  // namespace

void Session::startSlowCheck(auth::AuthResult pending, bool has_body) {
  state_ = State::AuthPending;
  rq_->pending_has_body = has_body;
  const uint32_t generation = ++auth_generation_;
  const uint32_t provider = static_cast<uint32_t>(pending.pending_provider);
  const auth::Authenticator& authenticator = *rq_->snap->shared->auth;
  auth::VerifyPool* pool =
      authenticator.provider(provider).type == config::AuthProvider::Type::Basic
          ? worker_.hashPool()
          : worker_.callPool();
  net::EventLoop* loop = &worker_.loop();
  // The job holds the snapshot: its authenticator lives as long as the check runs.
  auto job = [snapshot = rq_->snap->shared, provider, loop, self = this, generation,
              waiting = rq_->slow_check.arm(),
              credential = std::move(pending.pending_credential)]() mutable {
    if (!waiting->load(std::memory_order_relaxed)) return;
    auth::SlowCheckResult check =
        snapshot->auth->checkSlowly(provider, credential, static_cast<int64_t>(time(nullptr)));
    loop->post([self, generation, provider, credential = std::move(credential),
                check = std::move(check)] {
      self->resumeAuth(generation, provider, credential, check);
    });
  };
  if (pool == nullptr || !pool->submit(verifyQueueKey(peer_), std::move(job))) {
    replyError(http::ErrorCode::Unavailable, "too many authentication checks are waiting",
               has_body);
  }
}

void Session::resumeAuth(uint32_t generation, uint32_t provider, const std::string& credential,
                         const auth::SlowCheckResult& check) {
  if (generation != auth_generation_ || state_ != State::AuthPending) return;
  state_ = State::ReadHead;  // until admit() or a reply moves it on
  const auth::Authenticator& authenticator = *rq_->snap->shared->auth;
  auth::AuthResult result = authenticator.completeSlowCheck(
      provider, credential, check, rq_->snap->token_cache.get(), *rq_->identity);
  if (finishAuth(*rq_->route, rq_->pending_has_body, std::move(result))) {
    checkLimits(*rq_->route, *rq_->pending_match);
  }
  drive();
}

}  // namespace portico::proxy
