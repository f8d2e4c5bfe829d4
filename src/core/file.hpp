#pragma once
// Whole-file reads for config-time files (certificates, keys, key sets): small, read rarely.

#include <string>

namespace portico {

// Reads `path` into `out`; returns 0 or the errno of the failure (EISDIR for a directory).
int readWholeFile(const std::string& path, std::string& out);

}  // namespace portico
