#pragma once
// A blocking HTTP/1.1 GET over http:// or https://, with a deadline, for control-plane fetches
// (a JWKS document) run on threads of their own, never on a worker.

#include <chrono>
#include <string>

namespace portico::net {

struct HttpGetResult {
  bool ok = false;   // a complete 2xx response was read
  int status = 0;
  std::string body;
  std::string error;  // why not, for logs
};

// `ca_path`: the CA file trusted for https (empty: the system's store). The body is limited to
// `max_body` bytes.
HttpGetResult httpGet(const std::string& url, const std::string& ca_path,
                      std::chrono::milliseconds timeout, size_t max_body = 1024 * 1024);

}  // namespace portico::net
