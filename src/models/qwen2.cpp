// Qwen2 / Qwen2.5: Llama blocks with biases on q, k and v. Sliding attention
// only when use_sliding_window is set, for layers from max_window_layers on.
#include "models/arch.h"

namespace tandem::models {

// Shared with qwen3.cpp: the v4 rule for Qwen's layer types.
void qwen_default_layer_types(formats::ModelConfig& cfg) {
  if (cfg.has_layer_types) return;
  bool use_sliding = cfg.raw.value("use_sliding_window", false);
  int64_t max_window_layers = cfg.raw.value("max_window_layers", cfg.num_hidden_layers);
  cfg.layer_types.clear();
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    bool sliding = use_sliding && cfg.sliding_window && i >= max_window_layers;
    cfg.layer_types.push_back(sliding ? formats::LayerType::kSliding : formats::LayerType::kFull);
  }
}

namespace {

ArchSpec configure(formats::ModelConfig& cfg) {
  qwen_default_layer_types(cfg);
  ArchSpec s;
  s.activation = activation_from(cfg);
  s.qkv_bias = true;
  return s;
}

}  // namespace

extern const Family kQwen2Family{"qwen2", {"qwen2"}, configure};

}  // namespace tandem::models
