#include "upstream/dns_resolver.hpp"

#include <ares.h>
#include <poll.h>

#include <algorithm>
#include <cstring>

#include "core/clock.hpp"
#include "core/log.hpp"

namespace portico::upstream {
namespace {

struct Lookup {
  bool done = false;
  uint16_t port = 0;
  DnsResolver::Addresses addresses;
};

void onAnswer(void* arg, int status, int, ares_addrinfo* result) {
  Lookup& lookup = *static_cast<Lookup*>(arg);
  lookup.done = true;
  if (status != ARES_SUCCESS || result == nullptr) {
    if (result != nullptr) ares_freeaddrinfo(result);
    return;
  }
  for (const ares_addrinfo_node* node = result->nodes; node != nullptr; node = node->ai_next) {
    if (node->ai_family != AF_INET && node->ai_family != AF_INET6) continue;
    net::SocketAddress address;
    std::memcpy(&address.storage, node->ai_addr, node->ai_addrlen);
    address.length = static_cast<socklen_t>(node->ai_addrlen);
    if (node->ai_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&address.storage)->sin_port = htons(lookup.port);
    } else {
      reinterpret_cast<sockaddr_in6*>(&address.storage)->sin6_port = htons(lookup.port);
    }
    lookup.addresses.push_back(address);
  }
  ares_freeaddrinfo(result);
}

bool lessAddress(const net::SocketAddress& a, const net::SocketAddress& b) {
  if (a.length != b.length) return a.length < b.length;
  return std::memcmp(&a.storage, &b.storage, a.length) < 0;
}

bool sameAddress(const net::SocketAddress& a, const net::SocketAddress& b) {
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

// c-ares wants its library set up once per process.
struct AresLibrary {
  AresLibrary() { ares_library_init(ARES_LIB_INIT_ALL); }
  ~AresLibrary() { ares_library_cleanup(); }
};

}  // namespace

DnsResolver::Addresses DnsResolver::resolve(const std::string& host, uint16_t port,
                                            const std::vector<std::string>& servers,
                                            uint64_t timeout_ms) {
  static AresLibrary library;
  ares_options options{};
  options.timeout = static_cast<int>(std::min<uint64_t>(timeout_ms, 2000));
  options.tries = 2;
  ares_channel channel = nullptr;
  if (ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) {
    return {};
  }
  std::string csv;
  for (const std::string& server : servers) csv += (csv.empty() ? "" : ",") + server;
  if (!csv.empty() && ares_set_servers_ports_csv(channel, csv.c_str()) != ARES_SUCCESS) {
    ares_destroy(channel);
    return {};
  }
  Lookup lookup;
  lookup.port = port;
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  ares_getaddrinfo(channel, host.c_str(), nullptr, &hints, onAnswer, &lookup);
  const uint64_t deadline = monotonicMs() + timeout_ms;
  while (!lookup.done) {
    const uint64_t now = monotonicMs();
    if (now >= deadline) {
      ares_cancel(channel);  // calls onAnswer with ARES_ECANCELLED
      break;
    }
    ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(channel, sockets, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t count = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
      if (events != 0) fds[count++] = {sockets[i], events, 0};
    }
    timeval max{static_cast<time_t>((deadline - now) / 1000),
                static_cast<suseconds_t>((deadline - now) % 1000 * 1000)};
    timeval wait{};
    ares_timeout(channel, &max, &wait);
    const int wait_ms = static_cast<int>(wait.tv_sec * 1000 + wait.tv_usec / 1000) + 1;
    if (::poll(fds, count, wait_ms) <= 0) {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // its timeouts
      continue;
    }
    for (nfds_t i = 0; i < count; ++i) {
      ares_process_fd(channel,
                      (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD,
                      (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD);
    }
  }
  ares_destroy(channel);
  std::sort(lookup.addresses.begin(), lookup.addresses.end(), lessAddress);
  lookup.addresses.erase(std::unique(lookup.addresses.begin(), lookup.addresses.end(), sameAddress),
                         lookup.addresses.end());
  return lookup.addresses;
}

DnsResolver::DnsResolver(net::EventLoop& loop, PublishFn publish)
    : loop_(loop), publish_(std::move(publish)), thread_([this] { run(); }) {}

DnsResolver::~DnsResolver() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void DnsResolver::prepare(const config::Config& config) {
  for (const auto& [upstream_name, upstream] : config.upstreams) {
    if (!upstream.dns || addresses(upstream.dns->text)) continue;
    Addresses answer =
        resolve(upstream.dns->host, upstream.dns->port, config.dns_resolvers, kFirstTimeoutMs);
    if (answer.empty()) {
      LOG_WARN("upstream \"%s\": %s does not resolve yet; its requests get 503 until it does",
               upstream_name.c_str(), upstream.dns->text.c_str());
      continue;
    }
    std::lock_guard lock(mutex_);
    names_[upstream.dns->text].answer = std::move(answer);
  }
}

void DnsResolver::activate(const config::Config& config) {
  {
    std::lock_guard lock(mutex_);
    std::map<std::string, Name> kept;
    const uint64_t now = monotonicMs();
    for (const auto& [upstream_name, upstream] : config.upstreams) {
      if (!upstream.dns) continue;
      const auto refresh = static_cast<uint64_t>(upstream.dns_refresh.count());
      auto [at, first] = kept.try_emplace(upstream.dns->text);
      Name& name = at->second;
      if (first) {
        if (auto it = names_.find(upstream.dns->text); it != names_.end()) name = it->second;
        name.host = upstream.dns->host;
        name.port = upstream.dns->port;
        name.refresh_ms = refresh;
      }
      // The shortest refresh asked for a name wins when two upstreams share it.
      name.refresh_ms = std::min(name.refresh_ms, refresh);
      name.next_ms = name.answer ? now + name.refresh_ms : now;
    }
    names_ = std::move(kept);
    servers_ = config.dns_resolvers;
  }
  wake_.notify_all();
}

std::optional<DnsResolver::Addresses> DnsResolver::addresses(const std::string& name_port) const {
  std::lock_guard lock(mutex_);
  auto it = names_.find(name_port);
  if (it == names_.end() || !it->second.answer) return std::nullopt;
  return it->second.answer;
}

void DnsResolver::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const uint64_t now = monotonicMs();
    uint64_t next = now + 60'000;
    std::string due;
    for (const auto& [key, name] : names_) {
      if (name.next_ms <= now) {
        due = key;
        break;
      }
      next = std::min(next, name.next_ms);
    }
    if (due.empty()) {
      wake_.wait_for(lock, std::chrono::milliseconds(next - now));
      continue;
    }
    Name& name = names_[due];
    name.next_ms = now + name.refresh_ms;
    const std::string host = name.host;
    const uint16_t port = name.port;
    const std::vector<std::string> servers = servers_;
    lock.unlock();
    Addresses answer = resolve(host, port, servers, kRefreshTimeoutMs);
    lock.lock();
    auto it = names_.find(due);
    if (answer.empty() || it == names_.end()) continue;  // the last good answer stays
    if (it->second.answer && std::equal(answer.begin(), answer.end(), it->second.answer->begin(),
                                        it->second.answer->end(), sameAddress)) {
      continue;
    }
    it->second.answer = std::move(answer);
    LOG_INFO("%s resolves to %zu address(es) now", due.c_str(), it->second.answer->size());
    loop_.post([this] { publish_(); });
  }
}

}  // namespace portico::upstream
