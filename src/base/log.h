// Minimal leveled logging to stderr (results go to stdout, logs never do).
#pragma once

#include <string_view>

namespace tandem::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// The level is read once from TANDEM_LOG (debug|info|warn|error|off); default info.
Level level();
void set_level(Level l);
void write(Level l, std::string_view message);

inline void debug(std::string_view m) { write(Level::kDebug, m); }
inline void info(std::string_view m) { write(Level::kInfo, m); }
inline void warn(std::string_view m) { write(Level::kWarn, m); }
inline void error(std::string_view m) { write(Level::kError, m); }

}  // namespace tandem::log
