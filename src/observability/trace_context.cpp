#include "observability/trace_context.hpp"

#include <cstring>

namespace portico::observability {
namespace {

int lowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Lowercase hex, and not all zeros.
bool isId(std::string_view text) {
  bool nonzero = false;
  for (char c : text) {
    if (lowerHexValue(c) < 0) return false;
    nonzero |= c != '0';
  }
  return nonzero;
}

}  // namespace

bool parseTraceParent(std::string_view value, TraceParent& out) {
  if (value.size() < kTraceParentSize) return false;
  int v1 = lowerHexValue(value[0]);
  int v2 = lowerHexValue(value[1]);
  if (v1 < 0 || v2 < 0 || (v1 == 15 && v2 == 15)) return false;
  const bool version_00 = v1 == 0 && v2 == 0;
  if (version_00 ? value.size() != kTraceParentSize
                 : value.size() > kTraceParentSize && value[kTraceParentSize] != '-') {
    return false;
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return false;
  std::string_view trace = value.substr(3, 32);
  std::string_view parent = value.substr(36, 16);
  int f1 = lowerHexValue(value[53]);
  int f2 = lowerHexValue(value[54]);
  if (!isId(trace) || !isId(parent) || f1 < 0 || f2 < 0) return false;
  std::memcpy(out.trace_id, trace.data(), 32);
  std::memcpy(out.parent_id, parent.data(), 16);
  out.flags = static_cast<uint8_t>(f1 << 4 | f2);
  return true;
}

void formatTraceParent(const char* trace_id, const char* span_id, uint8_t flags, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::memcpy(out, "00-", 3);
  std::memcpy(out + 3, trace_id, 32);
  out[35] = '-';
  std::memcpy(out + 36, span_id, 16);
  out[52] = '-';
  out[53] = kDigits[flags >> 4];
  out[54] = kDigits[flags & 15];
}

void hexToBytes(std::string_view hex, std::span<uint8_t> out) {
  for (size_t i = 0; i < out.size() && 2 * i + 1 < hex.size(); ++i) {
    int hi = lowerHexValue(hex[2 * i]);
    int lo = lowerHexValue(hex[2 * i + 1]);
    out[i] = static_cast<uint8_t>((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
  }
}

}  // namespace portico::observability
