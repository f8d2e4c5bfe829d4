#pragma once
// RAII for OpenSSL objects, shared by the JWK parser and the verifier.

#include <openssl/err.h>

#include <memory>

namespace portico::auth::jwt {

// unique_ptr deleter calling an OpenSSL free function: std::unique_ptr<T, Deleter<&T_free>>.
template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};

// OpenSSL reports failures on a per-thread error queue, and TLS code on the same worker thread
// reads it (SSL_get_error) to classify its own errors: a rejected key or token must not leave
// entries there. Everything queued while an ErrorMark lives is dropped when it dies.
class ErrorMark {
 public:
  ErrorMark() { ERR_set_mark(); }
  ~ErrorMark() { ERR_pop_to_mark(); }
  ErrorMark(const ErrorMark&) = delete;
  ErrorMark& operator=(const ErrorMark&) = delete;
};

}  // namespace portico::auth::jwt
