#pragma once
// The names of `dns:` upstreams, resolved off the workers (c-ares, A and AAAA): at load, on the
// control thread and bounded by kFirstTimeout (a config is not put in force with a name nobody
// tried), then every dns_refresh on a thread of its own. A failed or empty answer keeps the last
// good one. A changed answer is handed to `publish` on the control thread, which builds a new
// snapshot with it: new addresses join, connections to vanished ones drain.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/model.hpp"
#include "net/event_loop.hpp"
#include "net/socket.hpp"

namespace portico::upstream {

class DnsResolver {
 public:
  using Addresses = std::vector<net::SocketAddress>;
  using PublishFn = std::function<void()>;  // some name's answer changed

  static constexpr uint64_t kFirstTimeoutMs = 3000;
  static constexpr uint64_t kRefreshTimeoutMs = 5000;

  DnsResolver(net::EventLoop& loop, PublishFn publish);
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // Before a config is used: its names without an answer yet are resolved now.
  void prepare(const config::Config& config);
  // Once it is in force: its names are the ones kept fresh.
  void activate(const config::Config& config);
  // The last good answer for "name:port" (the upstream's `dns` as written), sorted; none yet:
  // nullopt.
  std::optional<Addresses> addresses(const std::string& name_port) const;

  // One lookup, blocking up to timeout_ms; `servers`: "ip:port" list, empty for the system's.
  // Empty on failure.
  static Addresses resolve(const std::string& host, uint16_t port,
                           const std::vector<std::string>& servers, uint64_t timeout_ms);

 private:
  struct Name {
    std::string host;
    uint16_t port = 0;
    uint64_t refresh_ms = 30'000;
    uint64_t next_ms = 0;  // monotonic
    std::optional<Addresses> answer;
  };
  void run();

  net::EventLoop& loop_;
  PublishFn publish_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, Name> names_;  // by "name:port"
  std::vector<std::string> servers_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace portico::upstream
