#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace tandem::log {
namespace {

Level level_from_env() {
  const char* v = std::getenv("TANDEM_LOG");
  if (v == nullptr) return Level::kInfo;
  std::string s(v);
  if (s == "debug") return Level::kDebug;
  if (s == "warn") return Level::kWarn;
  if (s == "error") return Level::kError;
  if (s == "off") return Level::kOff;
  return Level::kInfo;
}

std::atomic<int>& current() {
  static std::atomic<int> lvl{static_cast<int>(level_from_env())};
  return lvl;
}

std::mutex& write_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

Level level() { return static_cast<Level>(current().load(std::memory_order_relaxed)); }
void set_level(Level l) { current().store(static_cast<int>(l), std::memory_order_relaxed); }

void write(Level l, std::string_view message) {
  if (static_cast<int>(l) < static_cast<int>(level())) return;
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::lock_guard<std::mutex> lock(write_mutex());
  std::fprintf(stderr, "[tandem %s] %.*s\n", kNames[static_cast<int>(l)],
               static_cast<int>(message.size()), message.data());
}

}  // namespace tandem::log
