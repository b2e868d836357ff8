// AVX2 + FMA + F16C backend for matmul. Compiled with -mavx2 -mfma -mf16c
// (CMakeLists.txt) and only called when CPUID says the CPU has them.
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/matmul.h"

namespace tandem::kernels {
namespace {

template <DType T>
inline __m256 load8(const void* w, int64_t j) {
  if constexpr (T == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + j);
  } else if constexpr (T == DType::kBF16) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + j));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + j));
    return _mm256_cvtph_ps(h);
  }
}

template <DType T>
inline float load1(const void* w, int64_t j) {
  if constexpr (T == DType::kF32) {
    return static_cast<const float*>(w)[j];
  } else if constexpr (T == DType::kBF16) {
    return bf16_to_f32(static_cast<const uint16_t*>(w)[j]);
  } else {
    return f16_to_f32(static_cast<const uint16_t*>(w)[j]);
  }
}

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, lo);
  lo = _mm_add_ss(lo, sh);
  return _mm_cvtss_f32(lo);
}

// MR rows of x against one weight row: each weight vector is converted once and
// used MR times; two accumulators per row hide the FMA latency.
template <DType T, int MR>
inline void tile(const float* x, int64_t k, const void* wrow, float* out, int64_t ldy) {
  __m256 acc0[MR], acc1[MR];
  for (int i = 0; i < MR; ++i) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    __m256 w0 = load8<T>(wrow, j);
    __m256 w1 = load8<T>(wrow, j + 8);
    for (int i = 0; i < MR; ++i) {
      acc0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * k + j), w0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * k + j + 8), w1, acc1[i]);
    }
  }
  for (; j + 8 <= k; j += 8) {
    __m256 w0 = load8<T>(wrow, j);
    for (int i = 0; i < MR; ++i) acc0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * k + j), w0, acc0[i]);
  }
  for (int i = 0; i < MR; ++i) {
    float s = hsum(_mm256_add_ps(acc0[i], acc1[i]));
    for (int64_t t = j; t < k; ++t) s += x[i * k + t] * load1<T>(wrow, t);
    out[i * ldy] = s;
  }
}

template <DType T>
void rows(const float* x, int64_t m, int64_t k, const void* w, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const size_t row_bytes = static_cast<size_t>(k) * dtype_size(T);
  for (int64_t r = r0; r < r1; ++r) {
    const void* wrow = static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * row_bytes;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) tile<T, 4>(x + i * k, k, wrow, y + i * ldy + r, ldy);
    switch (m - i) {
      case 3: tile<T, 3>(x + i * k, k, wrow, y + i * ldy + r, ldy); break;
      case 2: tile<T, 2>(x + i * k, k, wrow, y + i * ldy + r, ldy); break;
      case 1: tile<T, 1>(x + i * k, k, wrow, y + i * ldy + r, ldy); break;
      default: break;
    }
  }
}

}  // namespace

void matmul_rows_avx2(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t r0, int64_t r1,
                      float* y, int64_t ldy) {
  // Tall activations (prefill) are walked in blocks of rows so that a block of
  // x stays in cache while every weight row of this task streams past it.
  constexpr int64_t kRowBlock = 64;
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    int64_t mb = std::min<int64_t>(kRowBlock, m - i0);
    const float* xb = x + i0 * k;
    float* yb = y + i0 * ldy;
    switch (wtype) {
      case DType::kF32: rows<DType::kF32>(xb, mb, k, w, r0, r1, yb, ldy); break;
      case DType::kBF16: rows<DType::kBF16>(xb, mb, k, w, r0, r1, yb, ldy); break;
      case DType::kF16: rows<DType::kF16>(xb, mb, k, w, r0, r1, yb, ldy); break;
      default: matmul_rows_scalar(xb, mb, k, w, wtype, r0, r1, yb, ldy); break;
    }
  }
}

}  // namespace tandem::kernels
