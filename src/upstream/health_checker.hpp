#pragma once
// Active health checks (docs/resilience.md), once per process on the control thread's event
// loop: each checked endpoint gets a GET (or, where HTTP/1.1 cannot be spoken, a TCP connect)
// every `interval`, and its verdict goes into the EndpointHealth every worker reads.

#include <memory>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "net/event_loop.hpp"
#include "net/socket.hpp"

namespace portico::upstream {

struct EndpointHealth;

struct HealthTarget {
  std::string name;  // "upstream endpoint", for the log
  net::SocketAddress address;
  config::HealthCheck settings;
  std::string request;  // the check's request; empty: a TCP connect is the check
  std::shared_ptr<EndpointHealth> health;
};

class HealthChecker {
 public:
  explicit HealthChecker(net::EventLoop& loop);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The endpoints to check from now on; checks under way for the old list are dropped.
  void setTargets(std::vector<HealthTarget> targets);

  // The GET a check sends.
  static std::string requestFor(const config::HealthCheck& settings, std::string_view host);

 private:
  class Probe;
  net::EventLoop& loop_;
  std::vector<std::unique_ptr<Probe>> probes_;
};

}  // namespace portico::upstream
