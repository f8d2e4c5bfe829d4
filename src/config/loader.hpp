#pragma once
// YAML -> config::Config. Never throws: every problem found is returned, each with the file, line
// and column of the YAML node at fault, so one run of `portico validate` reports all of them.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"

namespace portico::config {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;

  // "file:line:col: message"
  std::string format() const;
};

struct LoadResult {
  std::optional<Config> config;  // set iff errors is empty
  std::vector<ConfigError> errors;
};

// Returns the value of an environment variable, or nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
std::optional<std::string> processEnv(const std::string& name);

LoadResult loadConfigFile(const std::string& path, const EnvLookup& env = processEnv);
LoadResult loadConfigString(std::string_view yaml, const std::string& file_name,
                            const EnvLookup& env = processEnv);

// Units shared with the CLI: "250ms", "5s", "1m", "1h" and "512", "64KiB", "10MiB", "1GiB".
std::optional<Duration> parseDuration(std::string_view text);
std::optional<uint64_t> parseSize(std::string_view text);

}  // namespace portico::config
