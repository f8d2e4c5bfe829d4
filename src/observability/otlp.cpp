#include "observability/otlp.hpp"

#include <array>
#include <chrono>

#include "auth/blocking_http.hpp"
#include "core/log.hpp"
#include "observability/trace_context.hpp"

namespace portico::observability {
namespace {

// Wire types of protobuf's encoding.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kLengthDelimited = 2;

// Queued spans that send a batch before its interval is up.
constexpr uint32_t kBatchWake = 512;

void appendVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

void appendTag(std::string& out, uint32_t field, uint32_t wire_type) {
  appendVarint(out, field << 3 | wire_type);
}

void appendBytes(std::string& out, uint32_t field, std::string_view bytes) {
  appendTag(out, field, kLengthDelimited);
  appendVarint(out, bytes.size());
  out.append(bytes);
}

void appendFixed64(std::string& out, uint32_t field, uint64_t value) {
  appendTag(out, field, kFixed64);
  for (int i = 0; i < 8; ++i) out += static_cast<char>(value >> (8 * i) & 0xff);
}

std::string_view idBytes(std::string_view hex, std::span<uint8_t> storage) {
  hexToBytes(hex, storage);
  return {reinterpret_cast<const char*>(storage.data()), storage.size()};
}

// KeyValue{key = 1, value = 2 AnyValue{string_value = 1 | int_value = 3}}
void appendAttribute(std::string& out, uint32_t field, const SpanAttribute& a) {
  std::string value;
  if (a.is_int) {
    appendTag(value, 3, kVarint);
    appendVarint(value, static_cast<uint64_t>(a.number));
  } else {
    appendBytes(value, 1, a.text);
  }
  std::string pair;
  appendBytes(pair, 1, a.key);
  appendBytes(pair, 2, value);
  appendBytes(out, field, pair);
}

}  // namespace

void appendSpan(std::string& out, const SpanData& span) {
  std::array<uint8_t, 16> trace{};
  std::array<uint8_t, 8> id{};
  std::array<uint8_t, 8> parent{};
  std::string body;
  body.reserve(256);
  appendBytes(body, 1, idBytes(span.trace_id_hex, trace));
  appendBytes(body, 2, idBytes(span.span_id_hex, id));
  if (!span.parent_id_hex.empty()) appendBytes(body, 4, idBytes(span.parent_id_hex, parent));
  appendBytes(body, 5, span.name);
  appendTag(body, 6, kVarint);
  appendVarint(body, 2);  // SPAN_KIND_SERVER
  appendFixed64(body, 7, span.start_unix_ns);
  appendFixed64(body, 8, span.end_unix_ns);
  for (const SpanAttribute& a : span.attributes) appendAttribute(body, 9, a);
  if (span.error) {
    std::string status;
    appendTag(status, 3, kVarint);
    appendVarint(status, 2);  // STATUS_CODE_ERROR
    appendBytes(body, 15, status);
  }
  appendBytes(out, 2, body);
}

std::string exportRequest(std::string_view service_name, std::string_view spans) {
  std::string resource;
  appendAttribute(resource, 1, {"service.name", service_name});
  std::string scope;
  appendBytes(scope, 1, "portico");
  std::string scope_spans;
  appendBytes(scope_spans, 1, scope);
  scope_spans.append(spans);
  std::string resource_spans;
  appendBytes(resource_spans, 1, resource);
  appendBytes(resource_spans, 2, scope_spans);
  std::string request;
  appendBytes(request, 1, resource_spans);
  return request;
}

SpanExporter::SpanExporter() : state_(std::make_shared<State>()) {}

SpanExporter::~SpanExporter() {
  if (!thread_.joinable()) return;
  std::unique_lock lock(state_->mutex);
  state_->stopping = true;
  state_->wake.notify_all();
  if (state_->wake.wait_for(lock, std::chrono::milliseconds(200),
                            [this] { return state_->stopped; })) {
    lock.unlock();
    thread_.join();
  } else {
    lock.unlock();
    thread_.detach();  // still waiting on the collector; the state lives on with the thread
  }
}

void SpanExporter::configure(Settings settings) {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    s.settings = std::move(settings);
    if (s.settings.endpoint.empty()) {
      s.dropped.fetch_add(s.queued_count, std::memory_order_relaxed);
      s.queued.clear();
      s.queued_count = 0;
    }
    if (!thread_.joinable() && !s.settings.endpoint.empty()) {
      thread_ = std::thread([state = state_] { run(state); });
    }
  }
  s.wake.notify_all();
}

void SpanExporter::submit(std::string_view spans, uint32_t count) {
  State& s = *state_;
  bool wake = false;
  {
    std::lock_guard lock(s.mutex);
    if (s.settings.endpoint.empty() ||
        s.queued_count + s.sending_count + count > s.settings.queue_size) {
      s.dropped.fetch_add(count, std::memory_order_relaxed);
      return;
    }
    s.queued.append(spans);
    s.queued_count += count;
    wake = s.queued_count >= kBatchWake;
  }
  if (wake) s.wake.notify_all();
}

void SpanExporter::run(const std::shared_ptr<State>& state) {
  State& s = *state;
  std::unique_lock lock(s.mutex);
  while (!s.stopping) {
    s.wake.wait_for(lock, std::chrono::milliseconds(s.settings.interval_ms),
                    [&s] { return s.stopping || s.queued_count >= kBatchWake; });
    // Stopping: what is queued still goes, once (a short drain, bounded by the timeout).
    if (s.queued_count == 0) continue;
    std::string spans;
    spans.swap(s.queued);
    s.sending_count = s.queued_count;
    s.queued_count = 0;
    Settings settings = s.settings;
    lock.unlock();
    // The collector's answer, slow or never, holds up only this thread; workers keep queueing
    // meanwhile, up to the queue's bound.
    auth::HttpGetResult result = auth::httpRequest(
        "POST", settings.endpoint, "Content-Type: application/x-protobuf\r\n",
        exportRequest(settings.service_name, spans), "", std::chrono::milliseconds(5'000),
        64 * 1024);
    lock.lock();
    const uint32_t count = s.sending_count;
    s.sending_count = 0;
    if (result.ok) {
      s.exported.fetch_add(count, std::memory_order_relaxed);
    } else {
      s.failed.fetch_add(count, std::memory_order_relaxed);
      std::string why = result.error.empty() ? "status " + std::to_string(result.status)
                                             : result.error;
      LOG_WARN("tracing: %u spans not exported to %s: %s", count, settings.endpoint.c_str(),
               why.c_str());
    }
  }
  s.stopped = true;
  s.wake.notify_all();
}

}  // namespace portico::observability
