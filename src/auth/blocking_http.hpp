#pragma once
// A blocking HTTP/1.1 request over http:// or https://, with a deadline, for fetches run on
// threads of their own (a JWKS document, a token introspection), never on a worker.

#include <chrono>
#include <string>
#include <string_view>

namespace portico::auth {

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

// The same with another method, extra header lines ("Name: value\r\n" each) and a body.
HttpGetResult httpRequest(std::string_view method, const std::string& url,
                          std::string_view extra_headers, std::string_view body,
                          const std::string& ca_path, std::chrono::milliseconds timeout,
                          size_t max_body = 1024 * 1024);

}  // namespace portico::auth
