// Weight layouts interleaved for the SIMD kernels, made at load from GGUF's
// row-major blocks (the way llama.cpp "repacks" for its CPU kernels).
//
// kQ8_0x16: groups of 16 rows. In GGUF's Q8_0 each row is a run of 34-byte
// blocks (an f16 scale, then 32 int8 weights), so a dot product handles one
// row's block at a time: one scale, one 32-value product, one float multiply-add
// per block and row. Interleaved, one 64-byte load holds 4 consecutive weights
// of 16 rows, an AVX-512 VNNI vpdpbusd multiplies them with 4 activations
// broadcast to every lane and accumulates all 16 rows' int32 sums at once, and
// the 16 rows' scales are one vector. A group of 16 rows and nb = k / 32
// blocks is a run of block pairs, 1088 bytes each (17 cache lines):
//
//   [0, 64)        scales: block 2p's 16 f16 (row j at 2 j), then block 2p+1's
//   [64, 576)      block 2p's weights: chunk c (columns 4c..4c+3) at + 64 c,
//                  row j at + 4 j, stored as w + 128 (unsigned, for vpdpbusd's
//                  u8 operand)
//   [576, 1088)    block 2p+1's weights, the same way
//
// and, when nb is odd, a last lone block of 544 bytes: its 32 bytes of scales,
// then its 512 of weights (q8_0x16_scales_at / q8_0x16_quants_at). So 34 bytes
// per row and block, as Q8_0: the memory a decode step streams is unchanged,
// and it streams in one run. (The first layout put all of a group's scales in
// front of its weights: two streams per group, which one thread read 12% slower
// in an isolated benchmark; docs/architecture.md.)
//
// kQ4_Kx16: groups of 16 rows; per 256-column super-block s, 2368 bytes
// (148 per row, GGUF's 144 plus 4 for the scales and mins widened to bytes):
//
//   [0, 32)       d of the 16 rows (f16), row j at 2 j
//   [32, 64)      dmin of the 16 rows (f16)
//   [64, 192)     sub-block scales: sub-block b (0..7) at 64 + 16 b, row j at + j
//   [192, 320)    sub-block mins in pairs: sub-blocks 2p, 2p+1 at 192 + 32 p + 2 j
//                 (one int16 pair per row for vpdpwssd once widened)
//   [320, 2368)   4-bit weights: GGUF's qs bytes 32c..32c+31 of each row (low
//                 nibbles: sub-block 2c, high: 2c+1) as 8 chunks of 4 bytes:
//                 chunk t at 320 + 512 c + 64 t, row j at + 4 j
//
// kQ4_0x16 / kQ5_0x16: groups of 16 rows; per 32-column block (288 / 352 bytes,
// 18 / 22 per row as in GGUF), in pairs of blocks (q4_q5x16_block_at below):
//
//   d             the 16 rows' scales (f16, 32 bytes)
//   masks         Q5_0 only: the high (fifth) bits as two 64-bit masks per
//                 chunk t (0..3) at + 16 t and + 8 + 16 t, bit 4j+u of row j
//                 (the chunk's byte 4j+u): the high bit of column 4t+u, and
//                 of column 16+4t+u (one mask register each in the kernel)
//   nibbles       GGUF's 16 bytes of nibbles per row as 4 chunks of 4 bytes:
//                 chunk t at + 64 t, row j at + 4 j (low nibbles: columns
//                 4t..4t+3, high: 16+4t..16+4t+3)
//
// kQ6_Kx16: groups of 16 rows; per 256-column super-block 3360 bytes (210 per
// row, as GGUF), the 6-bit levels split into nibbles and 2-bit highs:
//
//   [0, 32)       d of the 16 rows (f16)
//   [32, 288)     int8 scales of the 16-value sub-blocks in pairs: block p's two
//                 halves at 32 + 32 p + 2 j (one int16 pair per row once widened)
//   [288, 2336)   low nibbles: pair of 32-value blocks c (2c low, 2c+1 high),
//                 chunk t (columns 4t..4t+3) at 288 + 512 c + 64 t, row j at + 4 j
//   [2336, 3360)  high 2 bits: blocks 4q..4q+3 at bits 0-1, 2-3, 4-5, 6-7, chunk t
//                 at 2336 + 512 q + 64 t, row j at + 4 j
//
// A row is no longer contiguous, so only the matmul kernels and
// matrix_row_to_f32() read these tensors.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace tandem::kernels {

inline constexpr int64_t kPackRows = 16;

// Byte offsets, inside a kQ8_0x16 group of nb blocks, of block b's 16 scales
// and of its 512 bytes of weights.
inline int64_t q8_0x16_scales_at(int64_t b) { return 1088 * (b / 2) + 32 * (b % 2); }
inline int64_t q8_0x16_quants_at(int64_t b, int64_t nb) {
  return 1088 * (b / 2) + (b % 2 == 1 ? 576 : (b + 1 == nb ? 32 : 64));
}

// Byte offsets, inside a kQ4_0x16 / kQ5_0x16 group of nb blocks, of block b's
// 16 scales, its high-bit masks (Q5_0) and its 256 bytes of nibbles. Blocks go
// in pairs: [d b][d b+1]([masks b][masks b+1])[nibbles b][nibbles b+1], 576 /
// 704 bytes, so every nibble load is line-aligned; a lone last block keeps
// [d][masks][nibbles].
struct Q4Q5x16Offsets {
  int64_t d, masks, nibbles;
};
inline Q4Q5x16Offsets q4_q5x16_block_at(int64_t b, int64_t nb, bool five) {
  const int64_t block = five ? 352 : 288, pair = 2 * block * (b / 2), e = b % 2;
  if (e == 0 && b + 1 == nb) return {pair, pair + 32, pair + (five ? 96 : 32)};
  const int64_t nib0 = five ? 192 : 64;
  return {pair + 32 * e, pair + 64 + 64 * e, pair + nib0 + 256 * e};
}

// Whether a [n, k] matrix of type t has an interleaved form (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K; n % 16 == 0).
bool can_pack(DType t, int64_t n, int64_t k);
// The interleaved type made from t (kQ8_0 -> kQ8_0x16, kQ4_K -> kQ4_Kx16, ...).
DType packed_type(DType t);
// src: n rows of GGUF type t; dst: dtype_row_bytes(packed_type(t), k) * n bytes.
void pack(DType t, const uint8_t* src, int64_t n, int64_t k, uint8_t* dst);
// Rows [g * 16, g * 16 + 16) of an interleaved matrix of type `packed` back to
// GGUF rows of dtype_unpacked(packed) (16 * dtype_row_bytes(unpacked, k) bytes).
void unpack_group(DType packed, const void* w, int64_t k, int64_t g, uint8_t* dst);
// Row r of any matrix the kernels accept, as float32.
void matrix_row_to_f32(const TensorView& w, int64_t r, float* dst);

}  // namespace tandem::kernels
