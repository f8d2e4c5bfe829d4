#pragma once
// Process log (not the access log): leveled lines on stderr. Cheap when the level is off.

#include <atomic>
#include <cstdint>
#include <string_view>

namespace portico::log {

enum class Level : uint8_t { Debug, Info, Warn, Error };

extern std::atomic<Level> g_level;

bool parseLevel(std::string_view text, Level& out);
inline bool enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

// printf-style; one write(2) per line so lines from several threads never interleave.
void print(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace portico::log

#define PORTICO_LOG(level, ...)                                                        \
  do {                                                                                 \
    if (::portico::log::enabled(level)) ::portico::log::print(level, __VA_ARGS__);     \
  } while (0)
#define LOG_DEBUG(...) PORTICO_LOG(::portico::log::Level::Debug, __VA_ARGS__)
#define LOG_INFO(...) PORTICO_LOG(::portico::log::Level::Info, __VA_ARGS__)
#define LOG_WARN(...) PORTICO_LOG(::portico::log::Level::Warn, __VA_ARGS__)
#define LOG_ERROR(...) PORTICO_LOG(::portico::log::Level::Error, __VA_ARGS__)
