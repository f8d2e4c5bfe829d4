#include "filters/auth/auth.hpp"

#include <ctime>
#include <string_view>

#include "auth/verify_pool.hpp"
#include "config/cidr.hpp"
#include "core/siphash.hpp"
#include "net/event_loop.hpp"

namespace portico::filters {
namespace {

// Whose share of a verify pool's queue a check takes: the client's address, IPv6 by its /64 (a
// client holds a whole /64 as easily as one address).
uint64_t verifyQueueKey(const net::SocketAddress& peer) {
  const auto bytes = peer.asV6Bytes();
  const bool v4 = config::isIpv4Mapped(bytes);
  const std::string_view key(reinterpret_cast<const char*>(bytes.data()), v4 ? 16 : 8);
  return sipHash<1, 3>(processSipKey(), key);
}

// Who the upstream is told the client is: the consumer, its groups, and the token's claims the
// provider forwards. (A client's own fields of these names never reach the upstream.)
void appendIdentityFields(const auth::Identity& id, std::string& out) {
  auto field = [&out](std::string_view name, std::string_view value) {
    out.append(name).append(": ").append(value).append("\r\n");
  };
  if (id.consumer != nullptr) {
    field("X-Consumer-Name", id.consumer->name);
    if (!id.consumer->groups.empty()) {
      out.append("X-Consumer-Groups: ");
      for (size_t i = 0; i < id.consumer->groups.size(); ++i) {
        if (i) out.append(", ");
        out.append(id.consumer->groups[i]);
      }
      out.append("\r\n");
    }
  }
  if (id.provider != nullptr && id.provider->type == config::AuthProvider::Type::Jwt) {
    for (const auto& [claim, header] : id.provider->jwt.forward_claims) {
      std::string value = auth::claimHeaderValue(id.claimsOrNull(), claim);
      if (!value.empty()) field(header, value);
    }
  }
}

}  // namespace

Filter& AuthFactory::create(Arena& arena) const { return arena.make<AuthFilter>(*this); }

FilterStatus AuthFilter::onRequestHeaders(FilterCallbacks& stream, const RequestInfo& request) {
  StreamEnvironment* env = stream.environment();
  if (env == nullptr) {
    stream.reply({http::ErrorCode::Internal, "authentication is not available here"});
    return Replied;
  }
  const auth::Authenticator& authenticator = route_.authenticator();
  const tls::PeerCertificate* client_cert =
      authenticator.needsClientCertificate(route_.providers()) ? env->clientCertificate() : nullptr;
  auth::AuthResult result = authenticator.authenticate(
      route_.providers(), request.headers, request.query, static_cast<int64_t>(time(nullptr)),
      env->tokenCache(), env->identity(), client_cert, env->fetchedKeys());
  if (result.unknown_kid_provider >= 0) {
    env->unknownKid(static_cast<uint32_t>(result.unknown_kid_provider));
  }
  if (result.outcome == auth::AuthOutcome::Pending) {
    return startSlowCheck(stream, *env, request, std::move(result));
  }
  return finish(stream, *env, std::move(result));
}

FilterStatus AuthFilter::finish(FilterCallbacks& stream, StreamEnvironment& env,
                                auth::AuthResult result) {
  if (result.outcome == auth::AuthOutcome::Ok && route_.authorize()) {
    result = route_.authenticator().authorize(*route_.authorize(), env.identity());
  }
  if (result.outcome != auth::AuthOutcome::Ok) countFailure(env, result);
  switch (result.outcome) {
    case auth::AuthOutcome::Ok:
      env.markAuthenticated();
      appendIdentityFields(env.identity(), env.upstreamFields());
      return Continue;
    case auth::AuthOutcome::Ambiguous:
      // Two credentials where one is expected: parsers behind us could pick either.
      stream.reply({http::ErrorCode::BadRequest, result.message, 0, {}, true});
      return Replied;
    case auth::AuthOutcome::Unavailable:
      stream.reply({http::ErrorCode::Unavailable, result.message});
      return Replied;
    case auth::AuthOutcome::Unauthenticated:
      stream.reply({http::ErrorCode::Unauthenticated, result.message, 0, result.www_authenticate});
      return Replied;
    case auth::AuthOutcome::Forbidden:
    case auth::AuthOutcome::Pending:  // (authorize never answers Pending)
      stream.reply({http::ErrorCode::Forbidden, result.message});
      return Replied;
  }
  return Replied;
}

void AuthFilter::countFailure(StreamEnvironment& env, const auth::AuthResult& result) const {
  const auth::Authenticator& authenticator = route_.authenticator();
  std::string provider;
  if (result.outcome == auth::AuthOutcome::Forbidden && env.identity().provider != nullptr) {
    provider = env.identity().provider->name;
  } else if (result.refused_provider >= 0) {
    provider = authenticator.provider(static_cast<uint32_t>(result.refused_provider)).name;
  } else {
    // No credential for any of them: the route's providers, as a list.
    for (uint32_t index : route_.providers()) {
      if (!provider.empty()) provider += ',';
      provider += authenticator.provider(index).name;
    }
  }
  std::string_view reason = "invalid";
  switch (result.outcome) {
    case auth::AuthOutcome::Unauthenticated:
      reason = result.refused_provider < 0 ? "missing" : result.expired ? "expired" : "invalid";
      break;
    case auth::AuthOutcome::Forbidden:
      reason = "forbidden";
      break;
    case auth::AuthOutcome::Ambiguous:
      reason = "ambiguous";
      break;
    case auth::AuthOutcome::Unavailable:
      reason = "unavailable";
      break;
    case auth::AuthOutcome::Ok:
    case auth::AuthOutcome::Pending:
      break;
  }
  env.countAuthFailure(provider, reason);
}

FilterStatus AuthFilter::startSlowCheck(FilterCallbacks& stream, StreamEnvironment& env,
                                        const RequestInfo& request, auth::AuthResult pending) {
  const uint32_t provider = static_cast<uint32_t>(pending.pending_provider);
  const auth::Authenticator& authenticator = route_.authenticator();
  auth::VerifyPool* pool =
      env.verifyPool(authenticator.provider(provider).type == config::AuthProvider::Type::Basic);
  net::EventLoop* loop = &env.loop();
  // The job holds the snapshot: the authenticator lives as long as the check runs. Its answer
  // reaches this filter only while `waiting` holds: onComplete() drops it, on this thread,
  // before the filter goes.
  auto waiting = waiting_.arm();
  auto job = [snapshot = env.holdSnapshot(), &authenticator, provider, loop, waiting, self = this,
              stream = &stream, credential = std::move(pending.pending_credential)]() mutable {
    if (!waiting->load(std::memory_order_relaxed)) return;
    auth::SlowCheckResult check =
        authenticator.checkSlowly(provider, credential, static_cast<int64_t>(time(nullptr)));
    loop->post([waiting, self, stream, provider, credential = std::move(credential),
                check = std::move(check)] {
      if (waiting->load(std::memory_order_relaxed)) {
        self->slowCheckDone(*stream, provider, credential, check);
      }
    });
  };
  if (pool == nullptr || !pool->submit(verifyQueueKey(request.peer), std::move(job))) {
    waiting_.drop();
    env.countAuthFailure(authenticator.provider(provider).name, "unavailable");
    stream.reply({http::ErrorCode::Unavailable, "too many authentication checks are waiting"});
    return Replied;
  }
  return StopIteration;
}

void AuthFilter::slowCheckDone(FilterCallbacks& stream, uint32_t provider,
                               const std::string& credential, const auth::SlowCheckResult& check) {
  waiting_.drop();
  StreamEnvironment& env = *stream.environment();
  auth::AuthResult result = route_.authenticator().completeSlowCheck(
      provider, credential, check, env.tokenCache(), env.identity());
  if (finish(stream, env, std::move(result)) == Continue) stream.resume();
}

}  // namespace portico::filters
