#include "observability/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace portico::observability {

bool AccessLogSink::open(const config::AccessLog& config, std::string& error) {
  format_ = config.format;
  sample_ = config.sample;
  path_ = config.path;
  if (config.path == "off") return true;
  if (config.path == "stdout") {
    fd_ = STDOUT_FILENO;
  } else if (config.path == "stderr") {
    fd_ = STDERR_FILENO;
  } else {
    fd_ = ::open(config.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      error = "cannot open access log \"" + config.path + "\": " + strerror(errno);
      return false;
    }
    owns_fd_ = true;
  }
  return true;
}

AccessLogSink::~AccessLogSink() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

void AccessLogSink::write(std::string_view lines) {
  std::lock_guard lock(mutex_);
  while (!lines.empty() && fd_ >= 0) {
    ssize_t n = ::write(fd_, lines.data(), lines.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // a full disk must not stop the proxy
    }
    lines.remove_prefix(static_cast<size_t>(n));
  }
}

void AccessLogSink::reopen() {
  if (!owns_fd_) return;
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::lock_guard lock(mutex_);
  ::close(fd_);
  fd_ = fd;
}

void formatUtcNow(char* out) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  std::snprintf(out, 64, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (utc.tm_year + 1900) % 10000u,
                (utc.tm_mon + 1) % 100u, utc.tm_mday % 100u, utc.tm_hour % 100u, utc.tm_min % 100u,
                utc.tm_sec % 100u, static_cast<unsigned>(ts.tv_nsec / 1'000'000) % 1000u);
}

}  // namespace portico::observability
