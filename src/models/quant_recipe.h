// Which weight format each matrix gets when a model is quantized at load
// (`--quantize T`): the same table `tandem quantize` writes GGUF files with
// (models/gguf_export.h, recipe_tensor_type, described in docs/architecture.md):
// the output head gets more bits (q6_K for q4_k, q4_0 and q5_0), q4_k gives
// llama.cpp's Q4_K_M choice of q6_K to some layers' attn_v/ffn_down, rows a
// K-quant super-block does not divide fall back (q4_K -> q5_0, q6_K -> q8_0), and
// norms and biases are never quantized (they are float32 vectors in the model).
// f32/f16/bf16 convert every matrix to that type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tensor/dtype.h"

namespace tandem::models {

enum class WeightRole { kLinear, kEmbedding, kHead };

// `hf_name` is the checkpoint's tensor name (model.layers.N.self_attn.v_proj.weight, ...),
// `k` the row length, `n_layers` the model's layer count. Returns `stored` when the
// rows fit no quantized block.
DType recipe_type(DType target, const std::string& hf_name, WeightRole role, int64_t rows, int64_t k,
                  int64_t n_layers, DType stored);

// Parses a --quantize value ("q4_k", "Q8_0", "bf16", ...); nullopt if unknown.
std::optional<DType> parse_quant_target(std::string_view name);

}  // namespace tandem::models
