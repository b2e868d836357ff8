// Options shared by several commands.
#include "base/error.h"
#include "cli/commands.h"

namespace tandem::cli {

void apply_quantize_flag(const std::string& value, models::LoadOptions& lo) {
  if (value.empty()) return;
  lo.quantize = models::parse_quant_target(value);
  if (!lo.quantize) {
    throw Error("--quantize '" + value + "' is not one of q8_0, q6_k, q5_0, q4_k, q4_0, f32, f16, bf16");
  }
}

}  // namespace tandem::cli
