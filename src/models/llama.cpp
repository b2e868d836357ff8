// Llama 2/3 (incl. Llama 3 RoPE scaling) and other checkpoints in its layout.
#include "models/arch.h"

namespace tandem::models {
namespace {

ArchSpec configure(formats::ModelConfig& cfg) {
  default_layer_types(cfg, formats::LayerType::kFull);
  ArchSpec s;
  s.activation = activation_from(cfg);
  s.qkv_bias = cfg.attention_bias;
  s.o_bias = cfg.attention_bias;
  s.mlp_bias = cfg.mlp_bias;
  return s;
}

}  // namespace

extern const Family kLlamaFamily{"llama", {"llama"}, configure};

}  // namespace tandem::models
