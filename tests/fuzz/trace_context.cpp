// Fuzz target: the traceparent parser (src/observability/trace_context.hpp). Every client sends
// its value to it. What it accepts must be exactly what the W3C grammar allows: lowercase hex
// ids that are not all zero, dashes where they belong, version 00 at exactly 55 characters; and
// what the gateway sends upstream from it must parse again to the same ids.
//
// Input: the raw field value.

#include <cstdint>
#include <cstring>
#include <string_view>

#include "fuzz_util.hpp"
#include "observability/trace_context.hpp"

namespace {

using namespace portico;

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool allLowerHexNotZero(std::string_view s) {
  bool nonzero = false;
  for (char c : s) {
    if (!isLowerHex(c)) return false;
    nonzero |= c != '0';
  }
  return nonzero;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view value(reinterpret_cast<const char*>(data), size);
  observability::TraceParent parsed;
  if (!observability::parseTraceParent(value, parsed)) return 0;
  FUZZ_CHECK(value.size() >= observability::kTraceParentSize);
  FUZZ_CHECK(value.substr(0, 2) != "ff");
  FUZZ_CHECK(value.substr(0, 2) != "00" || value.size() == observability::kTraceParentSize);
  FUZZ_CHECK(value[2] == '-' && value[35] == '-' && value[52] == '-');
  FUZZ_CHECK(allLowerHexNotZero(std::string_view(parsed.trace_id, 32)));
  FUZZ_CHECK(allLowerHexNotZero(std::string_view(parsed.parent_id, 16)));
  FUZZ_CHECK(std::memcmp(parsed.trace_id, value.data() + 3, 32) == 0);
  char sent[observability::kTraceParentSize];
  observability::formatTraceParent(parsed.trace_id, parsed.parent_id, parsed.flags & 1, sent);
  observability::TraceParent again;
  FUZZ_CHECK(observability::parseTraceParent({sent, sizeof sent}, again));
  FUZZ_CHECK(std::memcmp(again.trace_id, parsed.trace_id, 32) == 0);
  FUZZ_CHECK(std::memcmp(again.parent_id, parsed.parent_id, 16) == 0);
  FUZZ_CHECK(again.sampled() == parsed.sampled());
  return 0;
}
