#pragma once
// What a stream offers the filters that need more than the request head: the connection it came
// on, what the request carries to later steps, and the worker's services. The session
// implements it; each method is a plain call on the worker's thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace portico::auth {
struct Identity;
class TokenCache;
class VerifyPool;
namespace jwt {
class KeySet;
}
}  // namespace portico::auth
namespace portico::http {
struct FieldEdits;
}
namespace portico::net {
class EventLoop;
}
namespace portico::ratelimit {
class LocalStore;
class SyncStore;
class RedisWaiter;
struct LimitScratch;
}  // namespace portico::ratelimit
namespace portico::tls {
struct PeerCertificate;
}

namespace portico::filters {

class StreamEnvironment {
 public:
  virtual ~StreamEnvironment() = default;

  // --- the connection ---
  // Its verified client certificate (looked up once), or null.
  virtual const tls::PeerCertificate* clientCertificate() = 0;

  // --- what the request carries to later steps (limits, the upstream's identity headers, the
  // access log) ---
  // Who the client is: made on first use, filled by authentication.
  virtual auth::Identity& identity() = 0;
  virtual void markAuthenticated() = 0;
  virtual bool authenticated() const = 0;
  // The client as `key: ip` limits count it (an IPv6 client by its prefix), written into
  // `scratch` when it is not the connection's own text.
  virtual std::string_view limitClientKey(std::string& scratch) = 0;
  // The most request body this request may have (instead of the listener's limit).
  virtual void limitRequestBody(uint64_t max_bytes) = 0;
  // Whole lines ("Name: value\r\n") the upstream request gets, for filters to append to.
  virtual std::string& upstreamFields() = 0;
  // The upstream request is written with these edits (which outlive the request).
  virtual void editUpstreamRequest(const http::FieldEdits& edits) = 0;
  // For the metrics: a refusal by authentication (`reason`: missing, invalid, expired,
  // forbidden, ambiguous, unavailable) or by a rate limit with `key`.
  virtual void countAuthFailure(std::string_view provider, std::string_view reason) = 0;
  virtual void countRateLimited(std::string_view key) = 0;
  // Containers kept across the requests of this stream's slot (ratelimit::LimitScratch).
  virtual ratelimit::LimitScratch& limitScratch() = 0;

  // --- the worker ---
  virtual net::EventLoop& loop() = 0;
  // Keeps the config snapshot the request runs on alive while work on another thread uses it.
  virtual std::shared_ptr<const void> holdSnapshot() = 0;
  virtual auth::TokenCache* tokenCache() = 0;  // this worker's, for this snapshot
  // Per auth provider: the key set fetched from its jwks_url, if any.
  virtual const std::vector<std::shared_ptr<const auth::jwt::KeySet>>* fetchedKeys() = 0;
  // A token named a kid the provider's fetched key set lacks: a fresh one is asked for.
  virtual void unknownKid(uint32_t provider) = 0;
  // Where slow checks run: password hashing, or calls out (token introspection).
  virtual auth::VerifyPool* verifyPool(bool hashing) = 0;
  // This worker's in-flight counter of a route's concurrency limit (index in the snapshot).
  virtual std::atomic<int64_t>& concurrencyCounter(uint32_t route, const std::string& name) = 0;
  virtual ratelimit::LocalStore& localStore() = 0;
  virtual ratelimit::SyncStore& syncStore() = 0;
  // Sends a Redis script call whose answer goes to `waiter`, but only while this request lives
  // and waits for it; false when it cannot be sent (no Redis, its queue full).
  virtual bool callRedis(std::span<const std::string_view> keys,
                         std::span<const std::string_view> args,
                         ratelimit::RedisWaiter& waiter) = 0;
  // After a StopIteration: the stream resumes by itself at `at_ms` (loop time), unless the
  // filter replies or resumes first.
  virtual void resumeAt(uint64_t at_ms) = 0;
};

}  // namespace portico::filters
