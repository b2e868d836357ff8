// Which weight format each matrix gets when a model is quantized at load
// (`--quantize T`), in the spirit of llama.cpp's mixes (Q4_K_M and friends):
// the output head is the most sensitive matrix and gets more bits; rows whose
// length is not a whole number of K-quant super-blocks fall back to a 32-block
// format of similar size; norms and biases are never quantized (they are
// float32 vectors in the model).
//
//   target   linear layers   untied embedding   output head (or tied embedding)
//   q8_0     q8_0            q8_0               q8_0
//   q6_k     q6_k            q6_k               q6_k
//   q5_0     q5_0            q5_0               q6_k
//   q4_k     q4_k            q4_k               q6_k
//   q4_0     q4_0            q4_0               q6_k
//   f32/f16/bf16: every matrix converted to that type.
//
// Fallbacks when the row length k is not a multiple of the block: q4_k -> q5_0,
// q6_k -> q8_0 (as llama.cpp does), then the stored type if k % 32 != 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "tensor/dtype.h"

namespace tandem::models {

enum class WeightRole { kLinear, kEmbedding, kHead };

DType recipe_type(DType target, WeightRole role, int64_t k, DType stored);

// Parses a --quantize value ("q4_k", "Q8_0", "bf16", ...); nullopt if unknown.
std::optional<DType> parse_quant_target(std::string_view name);

}  // namespace tandem::models
