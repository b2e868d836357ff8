// The architecture registry. Every supported family is one file
// (models/<family>.cpp) that describes how it differs from the shared decoder
// block (models/transformer.cpp); adding a family is a new file plus one line
// in registry.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "formats/hf_config.h"

namespace tandem::models {

enum class Activation { kSilu, kGeluTanh };

// What a family changes in the shared decoder block. Plain data, filled by the
// family's configure() from config.json.
struct ArchSpec {
  std::string family;            // registry name, e.g. "gemma2"
  float norm_offset = 0.0f;      // RMSNorm scales by (offset + w): Gemma uses 1
  bool sandwich_norms = false;   // Gemma 2/3: norms after attention and around the MLP
  bool qk_norm = false;          // Qwen3, Gemma3: RMSNorm over head_dim on q and k
  bool fused_qkv = false;        // Phi-3: one qkv_proj
  bool fused_gate_up = false;    // Phi-3: one gate_up_proj
  bool qkv_bias = false;         // Qwen2
  bool o_bias = false;
  bool mlp_bias = false;
  Activation activation = Activation::kSilu;
  bool scale_embeddings = false;  // Gemma: embeddings times sqrt(hidden_size)
  float attn_scale = 1.0f;        // multiplies q·k
  float attn_softcap = 0.0f;      // 0: none
  float final_softcap = 0.0f;     // 0: none
};

struct Family {
  std::string_view name;
  std::vector<std::string_view> model_types;  // config.json "model_type" values it accepts
  // Fills in the family's defaults (layer types, RoPE per layer type, tying)
  // for whatever config.json leaves out, validates what only it knows, and
  // returns the block description. Throws tandem::Error naming the field.
  ArchSpec (*configure)(formats::ModelConfig& cfg);
};

// nullptr when unknown.
const Family* find_family(std::string_view model_type);
// "gemma2, gemma3_text, llama, ..." for error messages.
std::string supported_model_types();
// Looks up the family, runs its configure(); throws tandem::Error listing the
// supported model types when model_type is unknown.
ArchSpec configure_model(formats::ModelConfig& cfg);

// Shared helpers for family files.
Activation activation_from(const formats::ModelConfig& cfg);
// Sets every layer to `t` unless layer_types came from config.json.
void default_layer_types(formats::ModelConfig& cfg, formats::LayerType t);

}  // namespace tandem::models
