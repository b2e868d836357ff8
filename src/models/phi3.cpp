// Phi-3 / Phi-3.5 / Phi-4-mini: fused qkv_proj ([q; k; v] rows) and fused
// gate_up_proj ([gate; up] rows); optional partial rotary and LongRoPE scaling.
#include "models/arch.h"

namespace tandem::models {
namespace {

ArchSpec configure(formats::ModelConfig& cfg) {
  default_layer_types(cfg, cfg.sliding_window ? formats::LayerType::kSliding : formats::LayerType::kFull);
  // LongRoPE's original context may sit at the top level of the config.
  int64_t orig = cfg.raw.value("original_max_position_embeddings", int64_t{0});
  for (auto& [t, r] : cfg.rope) {
    if (r.original_max_position_embeddings == 0 && orig > 0) r.original_max_position_embeddings = orig;
  }
  ArchSpec s;
  s.activation = activation_from(cfg);
  s.fused_qkv = true;
  s.fused_gate_up = true;
  return s;
}

}  // namespace

extern const Family kPhi3Family{"phi3", {"phi3"}, configure};

}  // namespace tandem::models
