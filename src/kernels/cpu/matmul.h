// Linear layers: y[m, n] = x[m, k] · w[n, k]ᵀ with float32 activations and
// weights in their stored dtype: F32, BF16, F16 converted in registers, or a
// block-quantized type (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K) through kernels/cpu/qmatmul.h.
//
// Front end (matmul.cpp) checks shapes and dtypes, splits the n output rows
// over the thread pool and calls the backend of the active ISA
// (matmul_scalar.cpp, matmul_avx2.cpp; matmul_avx512.cpp for BF16 weights on
// CPUs with AVX512_BF16). The scalar backend is the reference the others are
// tested against.
#pragma once

#include <cstdint>

#include "base/aligned_buffer.h"
#include "base/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "tensor/tensor.h"

namespace tandem::kernels {

// How float32 activations meet BF16 weights in the AVX512_BF16 kernel
// (matmul_avx512.cpp); every other path ignores it.
enum class Bf16Activations {
  kSplit,  // x = hi + lo, two bf16 halves: float32 parity (logits within 1e-5 of transformers in float32)
  kRound,  // x rounded once to bf16, as transformers in bfloat16 and llama.cpp compute: ~1.6x prefill, ~1e-3
};

// w must be rank 2 with shape [n, k]. y has row stride ldy >= n.
void matmul(const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy, ThreadPool& pool,
            Bf16Activations acts = Bf16Activations::kSplit);

// Same, on a chosen backend (tests compare them).
void matmul_with(Isa isa, const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy,
                 ThreadPool& pool, Bf16Activations acts = Bf16Activations::kSplit);

// Backend entry: rows [r0, r1) of w against all m rows of x.
using MatmulRowsFn = void (*)(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t r0,
                              int64_t r1, float* y, int64_t ldy);
void matmul_rows_scalar(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t r0, int64_t r1,
                        float* y, int64_t ldy);
void matmul_rows_avx2(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t r0, int64_t r1,
                      float* y, int64_t ldy);

// Activations for the AVX512_BF16 kernel (bf16 weights): each row of x split
// into hi = bf16(x) and lo = bf16(x - hi), so hi + lo carries ~16 of x's 24
// mantissa bits (why both: matmul_avx512.cpp). Rows are zero-padded to kp, a
// multiple of 32, so the kernel reads whole vectors.
struct Bf16Acts {
  int64_t m = 0, k = 0, kp = 0;
  bool split = true;               // false: hi only (Bf16Activations::kRound), lo unused
  AlignedBuffer<uint16_t> hi, lo;  // [m, kp]
  // Keeps the allocation when big enough.
  void resize(int64_t rows, int64_t cols);
 private:
  size_t cap_ = 0;
};
// Rows [i0, i1) of x (row stride k) into xa.
void bf16_acts_avx512(const float* x, int64_t i0, int64_t i1, Bf16Acts& xa);
// Rows [r0, r1) of the BF16 weight w [n, k] against all rows of xa.
void matmul_rows_bf16_avx512(const Bf16Acts& xa, const void* w, int64_t r0, int64_t r1, float* y, int64_t ldy);

// Converts n elements of a weight row (any weight dtype) to float32.
void to_f32(const void* src, DType type, int64_t n, float* dst);

}  // namespace tandem::kernels
