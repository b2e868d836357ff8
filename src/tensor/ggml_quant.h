// ggml's block quantization formats (the tensor encodings of GGUF files), with
// byte layouts identical to ggml/llama.cpp so GGUF tensor data is read in place.
// Scalar code: the reference a later SIMD pass is tested against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tensor/dtype.h"

namespace tandem {

// ggml's type ids as stored in GGUF tensor infos.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30
};

struct GgmlTypeInfo {
  std::string_view name;  // as ggml's type_name spells it ("q4_K", "f16", "bf16"), the
                          // spelling llama.cpp prints in tensor listings
  int64_t block_size;     // elements per block (1 for F32/F16/BF16, 32 for Q4_0.., 256 for K-quants)
  size_t type_size;       // bytes per block
  bool can_dequantize;    // we implement dequantize_row for it
};

// nullptr for an id we do not know (the GGUF reader turns that into a clear error naming the type id).
const GgmlTypeInfo* ggml_type_info(uint32_t type);

// Bytes of a row of n elements; n must be a multiple of block_size (the caller checks and
// errors). Throws tandem::Error for a type id outside the enum.
size_t ggml_row_size(GgmlType type, int64_t n);

// Dequantizes n elements (n % block_size == 0) from src into dst (float32). Reads exactly
// ggml_row_size(type, n) bytes; src needs no alignment. Throws tandem::Error for a type it
// cannot dequantize or an n that is not a whole number of blocks.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Quantizers. F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 are bit-identical to
// ggml's round-to-nearest *_ref functions; Q4_K and Q6_K use our own scale search
// (same format, not the same bytes as ggml's). Writes ggml_row_size(type, n) bytes.
// Throws tandem::Error for any other type or an n that is not a whole number of blocks.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Q4_K/Q5_K's eight 6-bit (scale, min) pairs, packed in 12 bytes: pair j (0..7)
// decoded, and all eight encoded (values 0..63).
void q4_k_scale_min(int j, const uint8_t* packed, int& scale, int& min);
void q4_k_pack_scales_mins(const int scales[8], const int mins[8], uint8_t* packed);

// The weight formats the engine computes with directly (tensor/dtype.h), and back.
std::optional<DType> dtype_from_ggml(GgmlType type);
std::optional<GgmlType> ggml_from_dtype(DType type);

}  // namespace tandem
