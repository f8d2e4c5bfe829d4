#include "config/env.hpp"

#include <cstdlib>

namespace portico::config {

std::optional<std::string> processEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

namespace detail {
namespace {

bool isNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool isNameChar(char c) { return isNameStart(c) || (c >= '0' && c <= '9'); }

constexpr std::string_view kUsage = "(use ${NAME} or ${NAME:-default})";

}  // namespace

std::string expandEnv(std::string_view text, const EnvLookup& env,
                      std::vector<std::string>& problems) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t start = text.find("${", i);
    if (start == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, start - i));
    size_t close = text.find('}', start + 2);
    if (close == std::string_view::npos) {
      problems.push_back("unterminated \"${\" " + std::string(kUsage));
      break;
    }
    std::string_view body = text.substr(start + 2, close - start - 2);
    std::string_view name = body;
    std::optional<std::string_view> fallback;
    if (size_t sep = body.find(":-"); sep != std::string_view::npos) {
      name = body.substr(0, sep);
      fallback = body.substr(sep + 2);
    }
    bool valid = !name.empty() && isNameStart(name[0]);
    for (char c : name) {
      valid = valid && isNameChar(c);
    }
    if (!valid) {
      problems.push_back("invalid environment variable reference \"" +
                         std::string(text.substr(start, close - start + 1)) + "\" " +
                         std::string(kUsage));
    } else {
      std::string key(name);
      std::optional<std::string> value = env ? env(key) : std::nullopt;
      // As in the shell, ":-" also replaces a variable that is set but empty.
      if (value && !(fallback && value->empty())) {
        out.append(*value);
      } else if (fallback) {
        out.append(*fallback);
      } else {
        problems.push_back("environment variable " + key + " is not set (use ${" + key +
                           ":-default} for a default)");
      }
    }
    i = close + 1;
  }
  return out;
}

}  // namespace detail
}  // namespace portico::config
