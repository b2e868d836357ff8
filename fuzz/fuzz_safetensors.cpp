// libFuzzer target for the safetensors header parser: any bytes must give a
// header whose every tensor lies inside the file, or a tandem::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto h = tandem::formats::parse_safetensors_header({data, size}, "fuzz.safetensors");
    for (const auto& e : h.entries) {
      // Invariants the loader relies on: offsets inside the data section.
      if (e.end < e.begin || h.data_start + e.end > size) std::abort();
      volatile uint8_t sink = 0;
      if (e.end > e.begin) sink = data[h.data_start + e.end - 1];
      (void)sink;
    }
  } catch (const tandem::Error&) {
  }
  return 0;
}
