// libFuzzer target for the GGUF parser: any bytes must give metadata and
// tensor infos whose every tensor lies inside the file without overlapping
// another, or a tandem::Error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/error.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto g = tandem::formats::parse_gguf({data, size}, "fuzz.gguf");
    for (const auto& t : g.tensors()) {
      // Invariants the loader relies on: data inside the file, dims within the rank limit.
      if (t.ne.empty() || t.ne.size() > 4) std::abort();
      if (g.data_start > size || t.offset > size - g.data_start || t.nbytes > size - g.data_start - t.offset) {
        std::abort();
      }
      volatile uint8_t sink = 0;
      if (t.nbytes > 0) sink = data[g.data_start + t.offset + t.nbytes - 1];
      (void)sink;
    }
    // The typed getters must only ever throw tandem::Error.
    for (const auto& [key, v] : g.metadata()) {
      try {
        (void)g.get_int(key);
      } catch (const tandem::Error&) {
      }
      try {
        (void)g.get_string_array(key);
      } catch (const tandem::Error&) {
      }
    }
  } catch (const tandem::Error&) {
  }
  return 0;
}
