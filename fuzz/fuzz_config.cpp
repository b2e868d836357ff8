// libFuzzer target: any bytes as a serving configuration (tandem.yaml). Only
// tandem::Error (ConfigError naming line and field) may escape; a yaml-cpp
// exception, a crash or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "pipeline/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)tandem::pipeline::parse_config_text(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const tandem::Error&) {
  }
  return 0;
}
