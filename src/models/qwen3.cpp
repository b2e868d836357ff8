// Qwen3: Llama blocks with RMSNorm on q and k per head (before RoPE) and an
// explicit head_dim that may differ from hidden_size / num_attention_heads.
#include "models/arch.h"

namespace tandem::models {

void qwen_default_layer_types(formats::ModelConfig& cfg);

namespace {

ArchSpec configure(formats::ModelConfig& cfg) {
  qwen_default_layer_types(cfg);
  ArchSpec s;
  s.activation = activation_from(cfg);
  s.qk_norm = true;
  s.qkv_bias = cfg.attention_bias;
  s.o_bias = cfg.attention_bias;
  return s;
}

}  // namespace

extern const Family kQwen3Family{"qwen3", {"qwen3"}, configure};

}  // namespace tandem::models
