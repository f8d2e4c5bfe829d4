#pragma once
// The filters of a route's request path. A route's filters are built once per snapshot from
// its config (filters/chain.cpp, the one place that names them) and shared by the workers, so
// a filter holds no per-request state. The session runs them in order when a request's head
// has been read and routed, before authentication: a filter lets the request go on or answers
// it, and may add fields to the request's response, whoever makes it (the upstream or the
// gateway).
//
// (#12 grows this into the full chain: request and response headers and bodies, complete,
// and filters that pause a stream.)

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/header.hpp"
#include "http/local_reply.hpp"
#include "net/socket.hpp"

namespace portico::filters {

// What a filter reads of a request.
struct RequestInfo {
  // The client: the peer, or behind trusted_proxies the rightmost X-Forwarded-For address that
  // is not one of them.
  const net::SocketAddress& client;
  std::string_view method;
  http::HeaderList headers;
};

// A filter's answer that ends the request: an error (SPEC §4's JSON body, or gRPC's
// trailers-only answer), or with `empty_status` set, that status without a body.
struct Reply {
  http::ErrorCode code = http::ErrorCode::Internal;
  std::string_view message;
  int empty_status = 0;
};

class RequestFilter {
 public:
  virtual ~RequestFilter() = default;
  // `response_headers` collects whole lines ("Name: value\r\n") for this request's response.
  virtual std::optional<Reply> onRequestHead(const RequestInfo& request,
                                             std::string& response_headers) const = 0;
};

using RequestFilters = std::vector<std::unique_ptr<const RequestFilter>>;

}  // namespace portico::filters
