#include "upstream/health_checker.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "core/log.hpp"
#include "upstream/upstream_health.hpp"

namespace portico::upstream {
namespace {

constexpr size_t kMaxResponseHead = 16 * 1024;

// The status of a response head that ends in "\r\n\r\n" within `data`: 0 while incomplete, -1
// when it is not HTTP.
int statusOf(std::string_view data) {
  if (data.size() < 12) return data.find("\r\n\r\n") == std::string_view::npos ? 0 : -1;
  if (data.size() >= 12 && !data.starts_with("HTTP/1.")) return -1;
  if (data.find("\r\n\r\n") == std::string_view::npos) return 0;
  int status = 0;
  auto [end, ec] = std::from_chars(data.data() + 9, data.data() + 12, status);
  if (ec != std::errc() || end != data.data() + 12 || data[8] != ' ' || status < 100) return -1;
  return status;
}

}  // namespace

std::string HealthChecker::requestFor(const config::HealthCheck& settings, std::string_view host) {
  std::string request = "GET " + settings.path + " HTTP/1.1\r\nHost: ";
  request += settings.host.empty() ? host : settings.host;
  request += "\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n";
  return request;
}

class HealthChecker::Probe final : public net::EventHandler, public net::Timed {
 public:
  Probe(net::EventLoop& loop, HealthTarget target) : loop_(loop), target_(std::move(target)) {
    loop_.setTimeout(*this, 1);  // the first check at once: a new endpoint is judged soon
  }
  ~Probe() override {
    closeSocket();
    loop_.forget(*this);
  }

  void onTimer() override {
    if (fd_ >= 0) {
      finish(false, "health check: no answer within the timeout");
    } else {
      start();
    }
  }

  void onEvents(uint32_t events) override {
    if (fd_ < 0) return;
    if (connecting_) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
        finish(false, std::string("health check: ") + std::strerror(err != 0 ? err : ECONNREFUSED));
        return;
      }
      if ((events & EPOLLOUT) == 0) return;
      connecting_ = false;
      if (target_.request.empty()) {
        finish(true, {});
        return;
      }
      // A few hundred bytes into an empty socket buffer: one write takes them.
      if (::send(fd_, target_.request.data(), target_.request.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(target_.request.size())) {
        finish(false, "health check: cannot send the request");
        return;
      }
    }
    readResponse();
  }

 private:
  void start() {
    started_ms_ = loop_.nowMs();
    response_.clear();
    fd_ = net::startConnect(target_.address);
    if (fd_ < 0 || !loop_.add(fd_, this)) {
      finish(false, std::string("health check: ") + std::strerror(errno));
      return;
    }
    connecting_ = true;
    loop_.setTimeout(*this, static_cast<uint64_t>(target_.settings.timeout.count()));
  }

  void readResponse() {
    char chunk[4096];
    for (;;) {
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n > 0) {
        response_.append(chunk, static_cast<size_t>(n));
        const int status = statusOf(response_);
        if (status != 0) {
          judge(status);
          return;
        }
        if (response_.size() > kMaxResponseHead) {
          finish(false, "health check: response head too large");
          return;
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      finish(false, n == 0 ? "health check: closed without a complete answer"
                           : std::string("health check: ") + std::strerror(errno));
      return;
    }
  }

  void judge(int status) {
    const auto& statuses = target_.settings.statuses;
    const bool passed =
        status > 0 &&
        (statuses.empty() ? status >= 200 && status < 300
                          : std::find(statuses.begin(), statuses.end(), status) != statuses.end());
    finish(passed, status < 0 ? "health check: not an HTTP response"
                              : "health check: status " + std::to_string(status));
  }

  void finish(bool passed, std::string reason) {
    closeSocket();
    EndpointHealth& health = *target_.health;
    const config::HealthCheck& settings = target_.settings;
    if (passed) {
      health.check_failures = 0;
      if (++health.check_passes >= settings.healthy &&
          health.check_failed.load(std::memory_order_relaxed)) {
        health.check_failed.store(false, std::memory_order_relaxed);
        LOG_INFO("%s is healthy again", target_.name.c_str());
      }
    } else {
      health.check_passes = 0;
      health.check_reason = std::move(reason);
      if (++health.check_failures >= settings.unhealthy &&
          !health.check_failed.load(std::memory_order_relaxed)) {
        health.check_failed.store(true, std::memory_order_relaxed);
        LOG_WARN("%s is unhealthy: %s", target_.name.c_str(), health.check_reason.c_str());
      }
    }
    const uint64_t next = started_ms_ + static_cast<uint64_t>(settings.interval.count());
    loop_.setDeadline(*this, std::max(next, loop_.nowMs() + 1));
  }

  void closeSocket() {
    if (fd_ < 0) return;
    ::close(fd_);  // also leaves the epoll set
    fd_ = -1;
    connecting_ = false;
  }

  net::EventLoop& loop_;
  HealthTarget target_;
  int fd_ = -1;
  bool connecting_ = false;
  uint64_t started_ms_ = 0;
  std::string response_;
};

HealthChecker::HealthChecker(net::EventLoop& loop) : loop_(loop) {}
HealthChecker::~HealthChecker() = default;

void HealthChecker::setTargets(std::vector<HealthTarget> targets) {
  probes_.clear();
  for (HealthTarget& target : targets) {
    probes_.push_back(std::make_unique<Probe>(loop_, std::move(target)));
  }
}

}  // namespace portico::upstream
