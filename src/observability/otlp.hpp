#pragma once
// OTLP/HTTP trace export: spans encoded by hand in protobuf's wire format (the handful of
// messages of opentelemetry-proto's trace/v1 that a server span needs), batched by a thread of
// its own. Workers hand over encoded spans once per event-loop batch; a slow or dead collector
// only fills a bounded queue, whose overflow is dropped and counted.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <memory>
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
    uint32_t queue_size = 2048;  // spans waiting or being sent
  };

  SpanExporter();
  // Does not wait for a collector that is slow to answer: the thread is let go, and what it
  // holds is freed when it ends.
  ~SpanExporter();
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  void configure(Settings settings);  // thread-safe; starts the thread on first use
  // Thread-safe: `count` spans, encoded by appendSpan(). What the queue has no room for is
  // dropped and counted.
  void submit(std::string_view spans, uint32_t count);

  uint64_t exported() const { return state_->exported.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return state_->dropped.load(std::memory_order_relaxed); }
  uint64_t failed() const { return state_->failed.load(std::memory_order_relaxed); }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable wake;
    Settings settings;
    std::string queued;
    uint32_t queued_count = 0;
    uint32_t sending_count = 0;
    bool stopping = false;
    bool stopped = false;
    std::atomic<uint64_t> exported{0};
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> failed{0};
  };
  static void run(const std::shared_ptr<State>& state);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace portico::observability
