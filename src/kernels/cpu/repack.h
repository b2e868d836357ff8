// Weight layouts interleaved for the SIMD kernels, made at load from GGUF's
// row-major blocks (the way llama.cpp "repacks" for its CPU kernels).
//
// kQ8_0x16: groups of 16 rows. In GGUF's Q8_0 each row is a run of 34-byte
// blocks (an f16 scale, then 32 int8 weights), so a dot product handles one
// row's block at a time: one scale, one 32-value product, one float multiply-add
// per block and row. Interleaved, one 64-byte load holds 4 consecutive weights
// of 16 rows, an AVX-512 VNNI vpdpbusd multiplies them with 4 activations
// broadcast to every lane and accumulates all 16 rows' int32 sums at once, and
// the 16 rows' scales are one vector. Per group of 16 rows and 32-column block b
// (nb = k / 32 blocks), bytes are:
//
//   [0, 32 nb)                      scales: block b at 32 b, row j's f16 at + 2 j
//   [32 nb, 32 nb + 512 nb)         weights: block b at + 512 b, then chunk c
//                                   (columns 4c..4c+3) at + 64 c, row j at + 4 j,
//                                   stored as w + 128 (unsigned, for vpdpbusd's
//                                   u8 operand)
//
// so 34 bytes per row and block, as Q8_0: the memory a decode step streams is
// unchanged. A row is no longer contiguous, so only the matmul kernels and
// matrix_row_to_f32() read these tensors.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace tandem::kernels {

inline constexpr int64_t kPackRows = 16;

// Whether a [n, k] matrix of type t has an interleaved form (Q8_0 with n % 16 == 0).
bool can_pack(DType t, int64_t n, int64_t k);
// The interleaved type made from t (kQ8_0 -> kQ8_0x16).
DType packed_type(DType t);
// src: n rows of GGUF Q8_0; dst: the same number of bytes.
void pack_q8_0x16(const uint8_t* src, int64_t n, int64_t k, uint8_t* dst);
// Rows [g * 16, g * 16 + 16) of an interleaved matrix back to GGUF Q8_0 rows (16 * k / 32 * 34 bytes).
void unpack_group_q8_0x16(const void* w, int64_t k, int64_t g, uint8_t* dst);
// Row r of any matrix the kernels accept, as float32.
void matrix_row_to_f32(const TensorView& w, int64_t r, float* dst);

}  // namespace tandem::kernels
