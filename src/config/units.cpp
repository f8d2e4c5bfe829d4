// Duration and size literals. Deliberately strict: a duration needs a unit ("5" could mean
// seconds or milliseconds, and guessing wrong is a thousandfold mistake), and sizes use the
// binary units the SPEC writes (KiB, MiB, GiB), never the ambiguous KB/MB.

#include <charconv>
#include <limits>

#include "config/loader.hpp"

namespace portico::config {
namespace {

// Splits "250ms" into 250 and "ms". Requires at least one digit and no sign, space or '.'.
bool splitNumber(std::string_view text, uint64_t& number, std::string_view& unit) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    ++digits;
  }
  if (digits == 0) {
    return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, number);
  if (ec != std::errc() || end != text.data() + digits) {
    return false;  // out of range
  }
  unit = text.substr(digits);
  return true;
}

bool multiply(uint64_t a, uint64_t b, uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) {
    return false;
  }
  out = a * b;
  return true;
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  uint64_t number = 0;
  std::string_view unit;
  if (!splitNumber(text, number, unit)) {
    return std::nullopt;
  }
  uint64_t factor = 0;
  if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = 60 * 1000;
  } else if (unit == "h") {
    factor = 60 * 60 * 1000;
  } else if (unit == "d") {
    factor = 24 * 60 * 60 * 1000;
  } else {
    return std::nullopt;
  }
  uint64_t ms = 0;
  if (!multiply(number, factor, ms) ||
      ms > static_cast<uint64_t>(std::numeric_limits<Duration::rep>::max())) {
    return std::nullopt;
  }
  return Duration{static_cast<Duration::rep>(ms)};
}

std::optional<uint64_t> parseSize(std::string_view text) {
  uint64_t number = 0;
  std::string_view unit;
  if (!splitNumber(text, number, unit)) {
    return std::nullopt;
  }
  uint64_t factor = 0;
  if (unit.empty()) {
    factor = 1;
  } else if (unit == "KiB") {
    factor = uint64_t{1} << 10;
  } else if (unit == "MiB") {
    factor = uint64_t{1} << 20;
  } else if (unit == "GiB") {
    factor = uint64_t{1} << 30;
  } else {
    return std::nullopt;
  }
  uint64_t bytes = 0;
  if (!multiply(number, factor, bytes)) {
    return std::nullopt;
  }
  return bytes;
}

}  // namespace portico::config
