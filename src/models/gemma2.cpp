// Gemma 2: (1 + w) RMSNorm, sandwich norms around attention and MLP, embeddings
// scaled by sqrt(hidden_size), GeGLU, query_pre_attn_scalar, attention and
// final logit soft-capping, sliding and global layers alternating.
#include <cmath>

#include "base/error.h"
#include "models/arch.h"

namespace tandem::models {

// Shared with gemma3.cpp.
ArchSpec gemma_common(formats::ModelConfig& cfg) {
  if (!cfg.raw.contains("tie_word_embeddings")) cfg.tie_word_embeddings = true;
  ArchSpec s;
  s.norm_offset = 1.0f;
  s.sandwich_norms = true;
  s.scale_embeddings = true;
  s.activation = activation_from(cfg);
  double scalar = cfg.query_pre_attn_scalar.value_or(256.0);  // transformers default
  if (scalar <= 0) throw Error(cfg.source + ": query_pre_attn_scalar must be positive");
  s.attn_scale = static_cast<float>(1.0 / std::sqrt(scalar));
  if (cfg.attn_logit_softcapping) s.attn_softcap = static_cast<float>(*cfg.attn_logit_softcapping);
  if (cfg.final_logit_softcapping) s.final_softcap = static_cast<float>(*cfg.final_logit_softcapping);
  return s;
}

namespace {

ArchSpec configure(formats::ModelConfig& cfg) {
  // transformers' defaults when the keys are absent altogether.
  if (!cfg.raw.contains("attn_logit_softcapping")) cfg.attn_logit_softcapping = 50.0;
  if (!cfg.raw.contains("final_logit_softcapping")) cfg.final_logit_softcapping = 30.0;
  if (!cfg.has_layer_types) {
    cfg.layer_types.clear();
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
      cfg.layer_types.push_back(i % 2 == 0 ? formats::LayerType::kSliding : formats::LayerType::kFull);
    }
  }
  if (!cfg.sliding_window) cfg.sliding_window = 4096;
  return gemma_common(cfg);
}

}  // namespace

extern const Family kGemma2Family{"gemma2", {"gemma2"}, configure};

}  // namespace tandem::models
