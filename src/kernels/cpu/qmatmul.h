// Linear layers with block-quantized weights (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K in
// GGUF's byte layout, tensor/ggml_quant.h): y[m, n] = x[m, k] · w[n, k]ᵀ.
//
// The activations x are first quantized to 8 bits with a float32 scale per
// block (QuantizedActs): blocks of 32 for the 32-blocks formats, of 256 for the
// K-quants (so a whole super-block, sub-block scales included, is summed in
// int32 and meets float once), and every weight block meets its
// activation block in an integer dot product: u8 × s8 → s32 (AVX2's
// maddubs + madd, or AVX-512 VNNI's vpdpbusd). The weights' unsigned levels are
// used as they are and their offsets (-8 for Q4_0, -16 for Q5_0, -32 for Q6_K,
// the mins of Q4_K) are applied through the activation block sums, so no weight
// is ever widened to float. Q8_0's signed weights use |w| · sign(x, w).
//
// Backends: qmatmul_scalar.cpp (the reference), qmatmul_avx2.cpp and
// qmatmul_avx512.cpp (one source, qmatmul_x86.h, compiled per ISA).
#pragma once

#include <cstdint>

#include "base/aligned_buffer.h"
#include "tensor/dtype.h"

namespace tandem::kernels {

// x quantized per block of `block` (32 or 256) values: x[i, j] ≈ d[i, j/block] * q[i, j].
struct QuantizedActs {
  int64_t m = 0, k = 0, block = 32;
  AlignedBuffer<int8_t> q;    // [m, k]
  AlignedBuffer<float> d;     // [m, k/block]
  AlignedBuffer<int16_t> s;   // [m, k/16]: sums of q over each 16 values
  // Keeps the allocation when big enough. k % block == 0.
  void resize(int64_t rows, int64_t cols, int64_t block_size);
  // Activation block size the kernels of a weight type expect.
  static int64_t block_for(DType wtype) { return dtype_block(wtype) == 256 ? 256 : 32; }
 private:
  size_t cap_q_ = 0;
};

// Backend entries. quantize: rows [i0, i1) of x (k % 32 == 0).
// rows: weight rows [r0, r1) of w (type wtype, k % dtype_block(wtype) == 0)
// against all m rows of xa; y has row stride ldy.
using QuantizeActsFn = void (*)(const float* x, int64_t i0, int64_t i1, QuantizedActs& xa);
using QMatmulRowsFn = void (*)(const QuantizedActs& xa, const void* w, DType wtype, int64_t r0, int64_t r1,
                               float* y, int64_t ldy);

void quantize_acts_scalar(const float* x, int64_t i0, int64_t i1, QuantizedActs& xa);
void quantize_acts_avx2(const float* x, int64_t i0, int64_t i1, QuantizedActs& xa);
void quantize_acts_avx512(const float* x, int64_t i0, int64_t i1, QuantizedActs& xa);
void qmatmul_rows_scalar(const QuantizedActs& xa, const void* w, DType wtype, int64_t r0, int64_t r1, float* y,
                         int64_t ldy);
void qmatmul_rows_avx2(const QuantizedActs& xa, const void* w, DType wtype, int64_t r0, int64_t r1, float* y,
                       int64_t ldy);
void qmatmul_rows_avx512(const QuantizedActs& xa, const void* w, DType wtype, int64_t r0, int64_t r1, float* y,
                         int64_t ldy);

}  // namespace tandem::kernels
