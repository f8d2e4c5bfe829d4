// portico: run | validate | explain | version (SPEC §2).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/log.hpp"
#include "server/server.hpp"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage:\n"
               "  portico run      -c portico.yaml [--workers N] [--log-level info]\n"
               "  portico validate -c portico.yaml\n"
               "  portico explain  -c portico.yaml METHOD URL [-H 'Name: value']...\n"
               "  portico version\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string command = argv[1];
  if (command == "version" || command == "--version") {
    std::printf("portico %s\n", PORTICO_VERSION);
    return 0;
  }
  std::string config_path;
  unsigned workers = 0;
  std::vector<std::string> positional;
  std::vector<std::string> headers;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "-c" || arg == "--config") {
      const char* v = value();
      if (!v) return usage();
      config_path = v;
    } else if (arg == "--workers" || arg == "-w") {
      const char* v = value();
      if (!v) return usage();
      int n = std::atoi(v);
      if (n < 1 || n > 256) {
        std::fprintf(stderr, "--workers: expected 1..256, got \"%s\"\n", v);
        return 2;
      }
      workers = static_cast<unsigned>(n);
    } else if (arg == "--log-level") {
      const char* v = value();
      portico::log::Level level;
      if (!v || !portico::log::parseLevel(v, level)) {
        std::fprintf(stderr, "--log-level: expected debug|info|warn|error\n");
        return 2;
      }
      portico::log::g_level = level;
    } else if (arg == "-H" || arg == "--header") {
      const char* v = value();
      if (!v) return usage();
      headers.emplace_back(v);
    } else if (!arg.empty() && arg[0] == '-' && arg.size() > 1) {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return usage();
    } else {
      positional.push_back(arg);
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "-c CONFIG is required\n");
    return usage();
  }
  if (command == "validate" && positional.empty()) {
    return portico::cli::validateCommand(config_path);
  }
  if (command == "explain" && positional.size() == 2) {
    return portico::cli::explainCommand(config_path, positional[0], positional[1], headers);
  }
  if (command == "run" && positional.empty()) {
    portico::server::Server server({config_path, workers});
    return server.run();
  }
  return usage();
}
