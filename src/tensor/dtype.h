// Element types of weights and activations, and scalar conversions.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace tandem {

// The ggml block-quantized types are weights only: rows of whole blocks with
// the byte layout of GGUF (tensor/ggml_quant.h), so GGUF data is used in place.
enum class DType : uint8_t {
  kF32, kF16, kBF16, kI32, kI64, kI8, kU8, kQ8_0, kQ4_0, kQ5_0, kQ4_K, kQ6_K,
  // In-memory only, never in a file: Q8_0 with 16 rows interleaved for the
  // AVX-512 kernels (kernels/cpu/repack.h). Same bytes per block as Q8_0, but a
  // row is not contiguous: TensorView::row() does not apply; use
  // kernels::matrix_row_to_f32().
  kQ8_0x16,
  // Likewise Q4_K, with the 6-bit sub-block scales and mins widened to bytes
  // (148 bytes per row and super-block instead of 144).
  kQ4_Kx16,
  // Q4_0 and Q5_0 likewise (same bytes; Q5_0's high bits regrouped per 4 columns).
  kQ4_0x16,
  kQ5_0x16,
  // And Q6_K (same bytes).
  kQ6_Kx16,
};

// Bytes per element of a plain type; bytes per block of a block type.
size_t dtype_size(DType t);
// Elements per block: 1 for plain types, 32 (Q8_0, Q4_0, Q5_0) or 256 (Q4_K, Q6_K).
int64_t dtype_block(DType t);
bool dtype_is_quantized(DType t);
// The file type an interleaved type was made from (itself for the others).
DType dtype_unpacked(DType t);
// Bytes of a row of n elements (n a multiple of dtype_block(t)).
inline size_t dtype_row_bytes(DType t, int64_t n) {
  return static_cast<size_t>(n / dtype_block(t)) * dtype_size(t);
}
// Parses "f32", "bf16", "q8_0", "q4_k", ... (case-insensitive; not the in-memory
// interleaved types).
std::optional<DType> dtype_from_name(std::string_view name);
std::string_view dtype_name(DType t);  // "F32", "BF16", ... as safetensors spells them
std::optional<DType> dtype_from_safetensors(std::string_view name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round-to-nearest-even, NaN kept quiet (as torch does).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace tandem
