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

void formatUtcAt(uint64_t monotonic_us, char* out) {
  // The wall clock is read once a second per thread, and the date and time formatted once a
  // second: a line pays for its milliseconds only.
  thread_local uint64_t offset_read_at_us = 0;
  thread_local int64_t wall_minus_monotonic_us = 0;
  if (offset_read_at_us == 0 || monotonic_us - offset_read_at_us >= 1'000'000) {
    timespec wall{};
    clock_gettime(CLOCK_REALTIME, &wall);
    const int64_t wall_us = static_cast<int64_t>(wall.tv_sec) * 1'000'000 + wall.tv_nsec / 1000;
    wall_minus_monotonic_us = wall_us - static_cast<int64_t>(monotonic_us);
    offset_read_at_us = monotonic_us;
  }
  const int64_t wall_us = static_cast<int64_t>(monotonic_us) + wall_minus_monotonic_us;
  const time_t second = static_cast<time_t>(wall_us / 1'000'000);
  thread_local time_t cached_second = -1;
  thread_local char cached[kUtcTimeSize];
  if (second != cached_second) {
    tm utc{};
    gmtime_r(&second, &utc);
    std::snprintf(cached, sizeof cached, "%04u-%02u-%02uT%02u:%02u:%02u.000Z",
                  (utc.tm_year + 1900) % 10000u, (utc.tm_mon + 1) % 100u, utc.tm_mday % 100u,
                  utc.tm_hour % 100u, utc.tm_min % 100u, utc.tm_sec % 100u);
    cached_second = second;
  }
  std::memcpy(out, cached, kUtcTimeSize);
  const unsigned millis = static_cast<unsigned>(wall_us / 1000 % 1000);
  out[20] = static_cast<char>('0' + millis / 100);
  out[21] = static_cast<char>('0' + millis / 10 % 10);
  out[22] = static_cast<char>('0' + millis % 10);
}

}  // namespace portico::observability
