#pragma once
// The `portico` subcommands (SPEC §2). Each returns the process exit code.

#include <string>
#include <vector>

namespace portico::cli {

int validateCommand(const std::string& config_path);
// method, url ("http://host[:port]/path?query" or "/path?query"), headers as "Name: value".
int explainCommand(const std::string& config_path, const std::string& method,
                   const std::string& url, const std::vector<std::string>& headers);

}  // namespace portico::cli
