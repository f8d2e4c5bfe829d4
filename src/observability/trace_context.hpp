#pragma once
// W3C Trace Context (traceparent): reading a client's, starting a new one, and the value the
// upstream gets, whose parent-id is the gateway's own span.

#include <cstdint>
#include <span>
#include <string_view>

namespace portico::observability {

struct TraceParent {
  char trace_id[32];  // lowercase hex
  char parent_id[16];
  uint8_t flags = 0;
  bool sampled() const { return (flags & 1) != 0; }
};

// Reads one traceparent value by the W3C rules: version 00 is exactly 55 characters; a later
// version is read by its first 55 when what follows starts with '-'; version ff, upper-case hex,
// an all-zero trace-id or parent-id make it invalid (false).
bool parseTraceParent(std::string_view value, TraceParent& out);

// "00-<trace>-<span>-<flags>", 55 characters.
inline constexpr size_t kTraceParentSize = 55;
void formatTraceParent(const char* trace_id, const char* span_id, uint8_t flags, char* out);

// Hex digits to bytes (even count, lowercase checked by the parser before).
void hexToBytes(std::string_view hex, std::span<uint8_t> out);

}  // namespace portico::observability
