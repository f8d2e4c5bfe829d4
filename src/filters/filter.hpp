#pragma once
// The filters of a route's request path. A route's filters are built once per snapshot from
// its config (filters/chain.cpp, the one place that names them) and shared by the workers, so
// a filter holds no per-request state. The session runs them in order when a request's head
// has been read and routed, before authentication: a filter either lets the request go on or
// answers it.
//
// (#12 grows this into the full chain: request and response headers and bodies, complete,
// and filters that pause a stream.)

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "http/local_reply.hpp"
#include "net/socket.hpp"

namespace portico::filters {

// What a filter reads of a request.
struct RequestInfo {
  // The client: the peer, or behind trusted_proxies the rightmost X-Forwarded-For address that
  // is not one of them.
  const net::SocketAddress& client;
};

// A filter's answer that ends the request.
struct Refusal {
  http::ErrorCode code;
  std::string_view message;
};

class RequestFilter {
 public:
  virtual ~RequestFilter() = default;
  virtual std::optional<Refusal> onRequestHead(const RequestInfo& request) const = 0;
};

using RequestFilters = std::vector<std::unique_ptr<const RequestFilter>>;

}  // namespace portico::filters
