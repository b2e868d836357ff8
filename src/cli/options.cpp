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

void add_activation_flags(CLI::App* c, ActivationFlags& f) {
  CLI::Option* b = c->add_flag("--bf16-activations", f.bf16,
                               "BF16 weights: round activations once to bf16, as llama.cpp and transformers in bfloat16 "
                               "do (default for .gguf files; logits ~1e-3 from float32)");
  CLI::Option* s = c->add_flag("--f32-activations", f.f32,
                               "BF16 weights: keep float32 activations (two bf16 halves; parity with transformers in "
                               "float32; default for model folders)");
  b->excludes(s);
}

}  // namespace tandem::cli
