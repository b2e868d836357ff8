// Gemma 3 (text): Gemma 2's blocks plus (1 + w) RMSNorm on q and k, separate
// RoPE bases for local (sliding) and global layers, five local layers per
// global one by default; soft-capping usually off.
#include "base/error.h"
#include "models/arch.h"

namespace tandem::models {

ArchSpec gemma_common(formats::ModelConfig& cfg);

namespace {

ArchSpec configure(formats::ModelConfig& cfg) {
  if (!cfg.has_layer_types) {
    int64_t pattern = cfg.raw.value("sliding_window_pattern", int64_t{6});
    if (pattern <= 0) throw Error(cfg.source + ": sliding_window_pattern must be positive");
    cfg.layer_types.clear();
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
      bool sliding = (i + 1) % pattern != 0;
      cfg.layer_types.push_back(sliding ? formats::LayerType::kSliding : formats::LayerType::kFull);
    }
  }
  if (!cfg.rope_per_layer_type) {
    // v4: rope_theta and rope_scaling are the global layers'; local layers use
    // rope_local_base_freq without scaling.
    if (!cfg.raw.contains("rope_theta") && !cfg.raw.contains("rope_parameters")) {
      cfg.rope[formats::LayerType::kFull].theta = 1000000.0;
    }
    formats::RopeParams local;
    local.theta = cfg.raw.value("rope_local_base_freq", 10000.0);
    local.partial_rotary_factor = cfg.rope[formats::LayerType::kFull].partial_rotary_factor;
    cfg.rope[formats::LayerType::kSliding] = local;
  }
  if (!cfg.sliding_window) cfg.sliding_window = 4096;
  ArchSpec s = gemma_common(cfg);
  s.qk_norm = true;
  return s;
}

}  // namespace

extern const Family kGemma3Family{"gemma3", {"gemma3_text"}, configure};

}  // namespace tandem::models
