#pragma once
// The access log's destination, shared by workers. Each worker formats lines into its own
// buffer and hands them over once per event-loop batch (one write(2) of whole lines), so lines
// never interleave and no lock is taken per request.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "config/model.hpp"

namespace portico::observability {

class AccessLogSink {
 public:
  // Opens the destination; false with `error` when a file cannot be opened.
  bool open(const config::AccessLog& config, std::string& error);
  ~AccessLogSink();
  bool enabled() const { return fd_ >= 0; }
  bool json() const { return format_ == config::AccessLog::Format::Json; }
  double sample() const { return sample_; }
  // Writes whole lines. Thread-safe.
  void write(std::string_view lines);
  // Re-opens a file destination (SIGUSR1, for log rotation).
  void reopen();

 private:
  std::mutex mutex_;  // taken once per batch per worker, and by reopen()
  int fd_ = -1;
  bool owns_fd_ = false;
  std::string path_;
  config::AccessLog::Format format_ = config::AccessLog::Format::Json;
  double sample_ = 1.0;
};

// Formats the UTC time at `monotonic_us` (core/clock.hpp's monotonicUs()) as
// "2026-11-23T05:53:31.123Z" into out (kUtcTimeSize bytes, the last a NUL).
inline constexpr size_t kUtcTimeSize = 25;
void formatUtcAt(uint64_t monotonic_us, char* out);

}  // namespace portico::observability
