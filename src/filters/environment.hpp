#pragma once
// What a stream offers the filters that need more than the request head: the connection it came
// on, what the request carries to later steps, and the worker's services. The session
// implements it; each method is a plain call on the worker's thread.

#include <cstdint>
#include <memory>
#include <vector>

namespace portico::auth {
struct Identity;
class TokenCache;
class VerifyPool;
namespace jwt {
class KeySet;
}
}  // namespace portico::auth
namespace portico::net {
class EventLoop;
}
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
};

}  // namespace portico::filters
