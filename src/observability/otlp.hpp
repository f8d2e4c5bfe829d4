#pragma once
// OTLP/HTTP trace export: spans encoded by hand in protobuf's wire format (the handful of
// messages of opentelemetry-proto's trace/v1 that a server span needs), batched by a thread of
// its own. Workers hand over encoded spans once per event-loop batch; a slow or dead collector
// only fills a bounded queue, whose overflow is dropped and counted.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>

namespace portico::observability {

struct SpanAttribute {
  std::string_view key;
  std::string_view text;  // a string value, unless `is_int`
  int64_t number = 0;
  bool is_int = false;
};

struct SpanData {
  std::string_view trace_id_hex;   // 32 digits
  std::string_view span_id_hex;    // 16
  std::string_view parent_id_hex;  // 16, or empty for a root span
  std::string_view name;
  uint64_t start_unix_ns = 0;
  uint64_t end_unix_ns = 0;
  std::span<const SpanAttribute> attributes;
  bool error = false;
};

// Appends the span as one ScopeSpans.spans entry (field 2, length-delimited).
void appendSpan(std::string& out, const SpanData& span);

// The ExportTraceServiceRequest around spans from appendSpan().
std::string exportRequest(std::string_view service_name, std::string_view spans);

class SpanExporter {
 public:
  struct Settings {
    std::string endpoint;  // empty: export off, spans are refused
    std::string service_name = "portico";
    uint64_t interval_ms = 1000;
    uint32_t queue_size = 2048;
  };

  SpanExporter();
  ~SpanExporter();
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  void configure(Settings settings);  // thread-safe; starts the thread on first use
  // Thread-safe: `count` spans, encoded by appendSpan(). What the queue has no room for is
  // dropped and counted.
  void submit(std::string_view spans, uint32_t count);

  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  Settings settings_;
  std::string queued_;
  uint32_t queued_count_ = 0;
  bool stopping_ = false;
  std::thread thread_;
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> failed_{0};
};

}  // namespace portico::observability
