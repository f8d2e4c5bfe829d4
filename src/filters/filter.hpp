#pragma once
// A route's filters: the steps a request goes through between the client and the upstream.
//
// A route's filter factories are built once per config snapshot from its config
// (filters/chain.cpp, the one place that names them) and shared by the workers. Each request
// gets its own filter instances, made in its arena by the factories and destroyed when it ends,
// so a filter keeps its per-request state in itself and nowhere else. A FilterChain runs them:
// request phases in route order, response phases in reverse, then complete, exactly once.
//
// A phase returns Continue (the next filter runs), StopIteration (this filter will call
// FilterCallbacks::resume() or reply() later; nothing runs meanwhile) or Replied (it answered
// with FilterCallbacks::reply(); the request goes no further).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/arena.hpp"
#include "filters/environment.hpp"
#include "http/header.hpp"
#include "http/local_reply.hpp"
#include "net/socket.hpp"

namespace portico::filters {

enum class FilterStatus : uint8_t { Continue, StopIteration, Replied };

// What a filter reads of a request.
struct RequestInfo {
  // The client: the peer, or behind trusted_proxies the rightmost X-Forwarded-For address that
  // is not one of them.
  net::SocketAddress client;
  std::string_view method;
  http::HeaderList headers;
  std::string_view query;   // raw, after '?'
  net::SocketAddress peer;  // the connection's peer (the client's proxy, behind one)
};

// The response head on its way to the client (the upstream's, or the gateway's own answer).
struct ResponseInfo {
  int status = 0;
  std::string& added_fields;  // whole lines ("Name: value\r\n") the filters add
  bool from_upstream = false;  // the upstream's answer, not the gateway's own
  // Lowercased, sorted names of the upstream's fields to leave out (one filter may set it).
  const std::vector<std::string>* dropped = nullptr;
};

// How a request ended, for the complete phase.
struct StreamOutcome {
  int status = 0;      // what the client was answered (0: nothing)
  bool reset = false;  // cut before its end: client gone, reset stream, timeout, error
};

// A filter's answer that ends the request: an error (SPEC §4's JSON body, or gRPC's
// trailers-only answer), or with `empty_status` set, that status without a body.
struct Reply {
  http::ErrorCode code = http::ErrorCode::Internal;
  std::string_view message;  // copied by the stream: it may go with the filter's own state
  int empty_status = 0;
  std::string_view www_authenticate = {};  // for a 401
  bool close = false;  // the connection ends after the answer (a request that may desync it)
};

// What a filter may ask of its stream, in a phase or after it returned StopIteration. Valid for
// the filter's lifetime: a filter that started work which calls back later cancels it in
// onComplete(), which always runs before the filter is destroyed.
class FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  // Answers the request. In a request phase, the filter then returns Replied; after a
  // StopIteration, this ends the pause.
  virtual void reply(const Reply& reply) = 0;
  // After a StopIteration (once the phase has returned it; from the worker's loop): the paused
  // phase goes on with the next filter.
  virtual void resume() = 0;
  // The stream's surroundings (filters/environment.hpp); null in filters' unit tests that do not
  // provide them.
  virtual StreamEnvironment* environment() { return nullptr; }
};

class Filter {
 public:
  using enum FilterStatus;
  virtual ~Filter() = default;
  // Request path, in route order.
  virtual FilterStatus onRequestHeaders(FilterCallbacks&, const RequestInfo&) { return Continue; }
  virtual FilterStatus onRequestBody(FilterCallbacks&, std::string_view, bool /*end*/) {
    return Continue;
  }
  // Response path, in reverse order; they also run over the gateway's own answers.
  virtual FilterStatus onResponseHeaders(FilterCallbacks&, ResponseInfo&) { return Continue; }
  virtual FilterStatus onResponseBody(FilterCallbacks&, std::string_view, bool /*end*/) {
    return Continue;
  }
  // Exactly once, after the response finished or the request was cut. Cancel async work here.
  virtual void onComplete(const StreamOutcome&) {}
};

// Built once per route per snapshot; immutable; shared by all workers.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  virtual Filter& create(Arena& arena) const = 0;
};

using FilterFactories = std::vector<std::unique_ptr<const FilterFactory>>;

}  // namespace portico::filters
