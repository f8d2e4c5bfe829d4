// Fuzz target: request path normalization (src/http/path.hpp). The router and the authorization
// rules see the normalized path and the upstream gets it, so what comes out must be canonical:
// no dot segments (in any encoding), no empty segments, no escapes an upstream could decode into
// something else, and normalizing it again changes nothing. Each input is normalized under every
// PathOptions (';' parameters stripped, kept or refused; letters lowercased or not).
//
// Input: the raw path, as it follows the method in a request line.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_util.hpp"
#include "http/path.hpp"

namespace {

using namespace portico;
using Parameters = http::PathOptions::Parameters;

bool isUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool isUpperHex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

int hexValue(char c) { return c <= '9' ? c - '0' : c - 'A' + 10; }

void checkCanonical(std::string_view raw, const std::string& out, const http::PathOptions& options) {
  FUZZ_CHECK(!out.empty() && out.front() == '/');
  // "out never grows beyond raw.size()" (path.cpp): a reserved buffer is never reallocated.
  FUZZ_CHECK(out.size() <= raw.size());
  FUZZ_CHECK(out.find("//") == std::string::npos);
  size_t start = 1;
  while (start <= out.size()) {
    size_t end = out.find('/', start);
    if (end == std::string::npos) end = out.size();
    const std::string_view segment = std::string_view(out).substr(start, end - start);
    FUZZ_CHECK(segment != "." && segment != "..");
    start = end + 1;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    if (c == '%') {
      // Escapes stay escaped, in upper case; an unreserved character is never left encoded,
      // and '/', '\' and NUL are never let through encoded.
      FUZZ_CHECK(i + 2 < out.size() && isUpperHex(out[i + 1]) && isUpperHex(out[i + 2]));
      const auto value = static_cast<unsigned char>(hexValue(out[i + 1]) * 16 + hexValue(out[i + 2]));
      FUZZ_CHECK(!isUnreserved(value) && value != '/' && value != '\\' && value != 0);
      i += 2;
      continue;
    }
    if (options.lowercase) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    // A ';' left in the path would be a parameter to a servlet container behind us: only Keep
    // lets one through.
    if (c == ';') {
      FUZZ_CHECK(options.parameters == Parameters::Keep);
      continue;
    }
    FUZZ_CHECK(c == '/' || isUnreserved(c) ||
               std::string_view("!$&'()*+,=:@").find(static_cast<char>(c)) != std::string_view::npos);
  }
  // The trailing '/' is significant to upstreams and kept (path.hpp).
  if (raw.back() == '/') FUZZ_CHECK(out.back() == '/');
}

// The result under `options`, checked; nullopt when the path is refused.
std::optional<std::string> normalizeChecked(std::string_view raw, const http::PathOptions& options) {
  std::string out = "left over from the previous request";
  if (http::normalizePath(raw, out, options) != http::PathError::None) {
    FUZZ_CHECK(out.empty());
    return std::nullopt;
  }
  checkCanonical(raw, out, options);
  std::string again;
  FUZZ_CHECK(http::normalizePath(out, again, options) == http::PathError::None);
  FUZZ_CHECK(again == out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  for (bool lowercase : {false, true}) {
    const auto strip = normalizeChecked(raw, {Parameters::Strip, lowercase});
    const auto keep = normalizeChecked(raw, {Parameters::Keep, lowercase});
    const auto reject = normalizeChecked(raw, {Parameters::Reject, lowercase});
    // Without a ';' the three ways agree; with one, Reject refuses.
    if (raw.find(';') == std::string_view::npos) {
      FUZZ_CHECK(strip == keep && keep == reject);
    } else {
      FUZZ_CHECK(!reject);
    }
  }
  return 0;
}
