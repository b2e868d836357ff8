// AVX-512 BF16 backend for matmul with BF16 weights: vdpbf16ps multiplies 32
// bf16 pairs and adds them into 16 float32 lanes, so the weights are used as
// stored (no widening to float, which is what limits the AVX2 path at prefill).
// Compiled with -mavx512bf16 (CMakeLists.txt); matmul.cpp calls it only when
// cpu_has_avx512_bf16() (kernels/cpu/isa.h), so nothing here runs elsewhere.
//
// Precision. vdpbf16ps needs both operands in bf16, so the float32 activations
// must be rounded. bf16(x) alone keeps 8 mantissa bits, a relative error of up
// to 2^-9 per product: on the HF parity fixtures the logits moved by 1.2e-3 to
// 5.2e-3 relative L2, against a guard of 1e-5 (the f32 path measures <= 4e-7).
// So the activations are split as x = hi + lo, hi = bf16(x), lo = bf16(x - hi):
// |x - hi - lo| <= 2^-18 |x|, and all the parity tests pass (worst logits
// 7.7e-6, the f32 path 4e-7; a third part would give float32 precision back at
// ~0.6x this speed, docs/architecture.md). Every weight vector meets both halves (two
// vdpbf16ps): half the speed of hi alone, still ~4x the AVX2 float path at
// prefill (docs/architecture.md).
// Bf16Activations::kRound (LoadOptions::bf16_activations, --bf16-activations)
// keeps hi alone: what transformers computes for a model loaded in bfloat16,
// and what llama.cpp does; ~1.6x the prefill speed, logits ~1e-3 from float32.
// GCC 12's 512-bit intrinsics start from _mm512_undefined_*(), a
// self-initialized variable that -Wuninitialized reports once inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/matmul.h"

namespace tandem::kernels {
namespace {

// Tile: kMR activation rows × kNR weight rows, with separate accumulators for
// the hi and lo halves (2·kMR·kNR = 20 zmm, plus kNR + 2 for the operands): each
// loaded weight vector is used 2·kMR times and each activation vector kNR
// times from registers. Adding lo into the hi accumulators instead chains two
// vdpbf16ps per accumulator and iteration, and ran at ~2/3 the speed. Measured
// with bench_matmul, 1 thread, m = 128 (noisy shared machine, best of 3):
// 2x4 73, 2x5 78, 2x6 ~80, 3x3 40 GMAC/s at k = 2048; at k = 8192
// 2x4 48, 2x5 56, 2x6 53.
constexpr int kMR = 2;
constexpr int kNR = 5;
// With hi alone (Bf16Activations::kRound) the lo accumulators are free for
// two more activation rows: 4x5 accumulators.
constexpr int kMR1 = 4;
// Activation rows are walked in blocks of about this many bytes (both halves)
// so that a block stays in L2 while the weight rows of a task stream past it.
constexpr int64_t kXBlockBytes = int64_t{512} << 10;
constexpr int64_t kKSpan = 2048;  // a multiple of 32

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

template <bool Split, int MR, int NR>
inline void step(__m512 (&acc)[MR][NR], __m512 (&accl)[MR][NR], const __m512bh (&wv)[NR], const uint16_t* xh,
                 const uint16_t* xl, int64_t kp) {
  for (int a = 0; a < MR; ++a) {
    const __m512bh h = as_bh(_mm512_load_si512(xh + a * kp));
    for (int c = 0; c < NR; ++c) acc[a][c] = _mm512_dpbf16_ps(acc[a][c], h, wv[c]);
    if constexpr (Split) {
      const __m512bh l = as_bh(_mm512_load_si512(xl + a * kp));
      for (int c = 0; c < NR; ++c) accl[a][c] = _mm512_dpbf16_ps(accl[a][c], l, wv[c]);
    }
  }
}

// The part [j0, j1) of the dot products of activation rows [i, i + MR) with
// weight rows w[0..NR) (row stride k): out[a * ldy + c] is set to (or, with
// add, increased by) the part of row i + a · weight row c.
struct Span {
  int64_t j0, j1;
  bool add;
};

template <bool Split, int MR, int NR>
inline void tile(const Bf16Acts& xa, int64_t i, const uint16_t* w, Span s, float* out, int64_t ldy) {
  const int64_t k = xa.k, kp = xa.kp;
  const uint16_t* xh = xa.hi.data() + i * kp;
  const uint16_t* xl = xa.lo.data() + i * kp;
  __m512 acc[MR][NR], accl[MR][NR];
  for (int a = 0; a < MR; ++a) {
    for (int c = 0; c < NR; ++c) acc[a][c] = accl[a][c] = _mm512_setzero_ps();
  }
  __m512bh wv[NR];
  int64_t j = s.j0;
  for (; j + 32 <= s.j1; j += 32) {
    for (int c = 0; c < NR; ++c) wv[c] = as_bh(_mm512_loadu_si512(w + c * k + j));
    step<Split, MR, NR>(acc, accl, wv, xh + j, xl + j, kp);
  }
  if (j < s.j1) {
    // The weight row ends inside this vector: load only its elements (the
    // activation rows are zero-padded to kp).
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (s.j1 - j)) - 1);
    for (int c = 0; c < NR; ++c) wv[c] = as_bh(_mm512_maskz_loadu_epi16(mask, w + c * k + j));
    step<Split, MR, NR>(acc, accl, wv, xh + j, xl + j, kp);
  }
  for (int a = 0; a < MR; ++a) {
    for (int c = 0; c < NR; ++c) {
      const float v = _mm512_reduce_add_ps(Split ? _mm512_add_ps(acc[a][c], accl[a][c]) : acc[a][c]);
      out[a * ldy + c] = s.add ? out[a * ldy + c] + v : v;
    }
  }
}

// Rows [i, i + r) for r < MR: the largest tile that fits, then the rest.
template <bool Split, int MR, int NR>
inline void tail(const Bf16Acts& xa, int64_t i, int64_t r, const uint16_t* w, Span s, float* y, int64_t ldy) {
  if constexpr (MR > 0) {
    if (r >= MR) {
      tile<Split, MR, NR>(xa, i, w, s, y + i * ldy, ldy);
      i += MR;
      r -= MR;
    }
    tail<Split, MR - 1, NR>(xa, i, r, w, s, y, ldy);
  }
}

// Activation rows [i0, i1) against NR weight rows.
template <bool Split, int MR, int NR>
void column(const Bf16Acts& xa, int64_t i0, int64_t i1, const uint16_t* w, Span s, float* y, int64_t ldy) {
  int64_t i = i0;
  for (; i + MR <= i1; i += MR) tile<Split, MR, NR>(xa, i, w, s, y + i * ldy, ldy);
  tail<Split, MR - 1, NR>(xa, i, i1 - i, w, s, y, ldy);
}

// Weight rows [r, r + left) for left < NR, as column tiles of at most NR - 1.
template <bool Split, int MR, int NR>
inline void column_tail(const Bf16Acts& xa, int64_t i0, int64_t i1, const uint16_t* w, int64_t r, int64_t left,
                        Span s, float* y, int64_t ldy) {
  if constexpr (NR > 0) {
    if (left >= NR) {
      column<Split, MR, NR>(xa, i0, i1, w + r * xa.k, s, y + r, ldy);
      r += NR;
      left -= NR;
    }
    column_tail<Split, MR, NR - 1>(xa, i0, i1, w, r, left, s, y, ldy);
  }
}

// Blocking: activation rows in blocks of about kXBlockBytes (they stay in L2
// while the task's weight rows stream past them), and k in spans of kKSpan so
// that the NR weight rows of a tile stay in L1 while every row tile of the
// block passes them (at k = 8192 whole rows did not, and the kernel ran at
// L2 bandwidth). Spans after the first add into y.
template <bool Split, int MR, int NR>
void rows(const Bf16Acts& xa, const uint16_t* w, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  const int64_t k = xa.k;
  const int64_t row_bytes = std::max<int64_t>(32, std::min(xa.kp, kKSpan)) * int64_t{4};  // k = 0 too
  const int64_t block = std::max<int64_t>(MR, kXBlockBytes / row_bytes / MR * MR);
  for (int64_t i0 = 0; i0 < xa.m; i0 += block) {
    const int64_t i1 = std::min(xa.m, i0 + block);
    // At least one span, so that k = 0 still writes zeros.
    for (int64_t j0 = 0; j0 == 0 || j0 < k; j0 += kKSpan) {
      const Span s{j0, std::min(k, j0 + kKSpan), j0 > 0};
      int64_t r = r0;
      for (; r + NR <= r1; r += NR) column<Split, MR, NR>(xa, i0, i1, w + r * k, s, y + r, ldy);
      column_tail<Split, MR, NR - 1>(xa, i0, i1, w, r, r1 - r, s, y, ldy);
    }
  }
}

}  // namespace

void bf16_acts_avx512(const float* x, int64_t i0, int64_t i1, Bf16Acts& xa) {
  const int64_t k = xa.k, kp = xa.kp;
  for (int64_t i = i0; i < i1; ++i) {
    const float* xr = x + i * k;
    uint16_t* hi = xa.hi.data() + i * kp;
    uint16_t* lo = xa.lo.data() + i * kp;
    for (int64_t j = 0; j < kp; j += 16) {
      // Past k the mask is empty and the padding comes out as zeros.
      const int64_t left = std::clamp<int64_t>(k - j, 0, 16);
      const __m512 v = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << left) - 1), xr + j);
      const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
      const __m512 hf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      _mm256_store_si256(reinterpret_cast<__m256i*>(hi + j), h);
      if (xa.split) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(lo + j), (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, hf)));
      }
    }
  }
}

void matmul_rows_bf16_avx512(const Bf16Acts& xa, const void* w, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  if (xa.split) {
    rows<true, kMR, kNR>(xa, static_cast<const uint16_t*>(w), r0, r1, y, ldy);
  } else {
    rows<false, kMR1, kNR>(xa, static_cast<const uint16_t*>(w), r0, r1, y, ldy);
  }
}

}  // namespace tandem::kernels
