// Fuzz target: the YAML config loader (src/config/loader.hpp), through loadConfigString with a
// fixed environment. The loader promises never to throw and to explain every refusal.
//
// Files the config names (TLS files, jwks_file, jwks_ca, endpoint_ca) are read with
// portico::readWholeFile, which this target replaces with an in-memory fake (src/core/file.cpp
// defines only that function, so it is then not linked in): a fuzzed path such as /dev/zero,
// /dev/stdin or /proc/kmsg must not hang the fuzzer, and the outcome of an input must not depend
// on the machine. Names ending in .pem, .crt, .key or .json exist; others don't.
//
// Input: the YAML text.

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/loader.hpp"
#include "core/file.hpp"
#include "fuzz_util.hpp"

namespace portico {

int readWholeFile(const std::string& path, std::string& out) {
  const std::string_view name = std::string_view(path).substr(path.rfind('/') + 1);
  for (std::string_view ext : {".pem", ".crt", ".key", ".json"}) {
    if (name.size() > ext.size() && name.ends_with(ext)) {
      out = ext == ".json" ? R"({"keys":[]})" : "-----BEGIN FUZZ-----\n-----END FUZZ-----\n";
      return 0;
    }
  }
  return ENOENT;
}

}  // namespace portico

namespace {

using namespace portico;

std::optional<std::string> fuzzEnv(const std::string& name) {
  if (name == "PORT") return "8080";
  if (name == "USERS_HOST") return "users.internal";
  if (name == "JWT_SECRET") return "an HS256 secret of at least thirty-two bytes";
  if (name == "TIMEOUT") return "5s";
  if (name == "EMPTY") return "";
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  const std::string file = "/fuzz/config/portico.yaml";
  const config::LoadResult result = config::loadConfigString(yaml, file, fuzzEnv);
  // A config, or the reasons there is none: never both, never neither.
  FUZZ_CHECK(result.config.has_value() == result.errors.empty());
  for (const config::ConfigError& error : result.errors) {
    FUZZ_CHECK(!error.message.empty());
    FUZZ_CHECK(error.line >= 0 && error.column >= 0);
    FUZZ_CHECK(!error.format().empty());
  }
  return 0;
}
