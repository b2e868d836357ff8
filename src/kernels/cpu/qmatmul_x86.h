// x86 SIMD body of the quantized matmul (kernels/cpu/qmatmul.h), included by
// one translation unit per ISA:
//   qmatmul_avx2.cpp    (-mavx2 -mfma -mf16c): u8·s8 dot products as
//                       vpmaddubsw + vpmaddwd;
//   qmatmul_avx512.cpp  (adds AVX-512 F/BW/VL/VNNI, TANDEM_QMATMUL_VNNI=1):
//                       one vpdpbusd per 32 byte pairs.
// Both work on 256-bit vectors: one vector is one block of 32 values, so block
// scales stay scalar broadcasts. Everything here has internal linkage; the TU
// defines the exported entry points with its ISA's suffix.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "base/error.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/repack.h"

// GCC 12 reports its own _mm512_undefined_ps() (used inside _mm512_cvtph_ps and
// _mm512_cvtepi32_ps) as maybe-uninitialized (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tandem::kernels {
namespace {

#if TANDEM_QMATMUL_VNNI
inline __m256i dot_u8s8(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
#else
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
#endif

inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}

inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// The 32 bits of a Q5_0 qh as 32 bytes of 0x10 (bit set) or 0.
inline __m256i high_bits_q5(uint32_t qh) {
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                        3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), shuf);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

// Pointers to MR consecutive activation rows.
template <int MR>
struct Rows {
  const int8_t* q[MR];
  const float* d[MR];
  const int16_t* s[MR];
  Rows(const QuantizedActs& xa, int64_t i0) {
    for (int i = 0; i < MR; ++i) {
      q[i] = xa.q.data() + (i0 + i) * xa.k;
      d[i] = xa.d.data() + (i0 + i) * (xa.k / xa.block);
      s[i] = xa.s.data() + (i0 + i) * (xa.k / 16);
    }
  }
};

template <int MR>
inline void tile_q8_0(const uint8_t* w, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
  __m256 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / 32; ++b, w += 34) {
    const __m256i wv = load32(w + 2);
    const __m256i wa = _mm256_sign_epi8(wv, wv);
    const float dw = half_at(w);
    for (int i = 0; i < MR; ++i) {
      const __m256i p = dot_u8s8(wa, _mm256_sign_epi8(load32(x.q[i] + 32 * b), wv));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * x.d[i][b]), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) out[i * ldy] = hsum(acc[i]);
}

// The offset (-8 or -16) is applied to the weights, which then go through the
// same |w| · sign(x, w) product as Q8_0: cheaper per row than correcting with
// the activation sums.
template <int MR, bool kFive>
inline void tile_q4_q5(const uint8_t* w, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
  constexpr int64_t kBytes = kFive ? 22 : 18;
  __m256 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m256i offset = _mm256_set1_epi8(kFive ? 16 : 8);
  for (int64_t b = 0; b < k / 32; ++b, w += kBytes) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + (kFive ? 6 : 2)));
    __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
    if constexpr (kFive) {
      uint32_t qh;
      std::memcpy(&qh, w + 2, 4);
      u = _mm256_or_si256(u, high_bits_q5(qh));
    }
    const __m256i ws = _mm256_sub_epi8(u, offset);
    const __m256i wa = _mm256_sign_epi8(ws, ws);
    const float dw = half_at(w);
    for (int i = 0; i < MR; ++i) {
      const __m256i p = dot_u8s8(wa, _mm256_sign_epi8(load32(x.q[i] + 32 * b), ws));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * x.d[i][b]), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) out[i * ldy] = hsum(acc[i]);
}

// K-quants: the activation scale is per super-block, so the sub-block scales
// are applied in integers and the super-block meets float once per row.
// u·x in pairs (int16), then pairs of pairs times per-lane int16 scales. (On the
// VNNI path too: vpdpbusd followed by a vpmulld for the scales measured slower.)
inline __m256i dot_scaled(__m256i u, __m256i x, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), scale16);
}

// The eight 6-bit scales and mins of a Q4_K super-block (12 bytes) as bytes
// 0-7 (scales) and 8-15 (mins), with 32-bit word arithmetic instead of eight
// scalar decodes (the layout is described at scale_min_k4 in tensor/ggml_quant.cpp).
inline __m128i q4_k_scales_mins(const uint8_t* p) {
  uint32_t u[4];
  std::memcpy(u, p, 12);
  const uint32_t lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
  const uint32_t mins_hi = ((u[2] >> 4) & lo4) | (((u[1] >> 6) & lo2) << 4);
  const uint32_t mins_lo = u[1] & lo6;
  const uint32_t scales_hi = (u[2] & lo4) | (((u[0] >> 6) & lo2) << 4);
  const uint32_t scales_lo = u[0] & lo6;
  return _mm_setr_epi32(static_cast<int>(scales_lo), static_cast<int>(scales_hi), static_cast<int>(mins_lo),
                        static_cast<int>(mins_hi));
}

// Broadcasts int16 lane j of v (both 128-bit halves hold the same 8 values).
template <int J>
inline __m256i broadcast16(__m256i v) {
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16(static_cast<int16_t>((2 * J) | ((2 * J + 1) << 8))));
}

template <int MR>
inline void tile_q4_k(const uint8_t* w, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
  __m256 acc[MR], corr[MR];
  for (int i = 0; i < MR; ++i) {
    acc[i] = _mm256_setzero_ps();
    corr[i] = _mm256_setzero_ps();
  }
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t sb = 0; sb < k / 256; ++sb, w += 144) {
    const float d = half_at(w), dmin = half_at(w + 2);
    const __m128i sm = q4_k_scales_mins(w + 4);
    const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));  // 8 x int16, twice
    __m256i sc16[8];
    sc16[0] = broadcast16<0>(scales);
    sc16[1] = broadcast16<1>(scales);
    sc16[2] = broadcast16<2>(scales);
    sc16[3] = broadcast16<3>(scales);
    sc16[4] = broadcast16<4>(scales);
    sc16[5] = broadcast16<5>(scales);
    sc16[6] = broadcast16<6>(scales);
    sc16[7] = broadcast16<7>(scales);
    const __m128i mins8 = _mm_unpackhi_epi64(sm, sm);
    const __m256i mv = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8));  // each min twice
    __m256i isum[MR];
    for (int i = 0; i < MR; ++i) isum[i] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = load32(w + 16 + 32 * c);
      const __m256i lo = _mm256_and_si256(raw, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
      for (int i = 0; i < MR; ++i) {
        const int8_t* xq = x.q[i] + 256 * sb + 64 * c;
        isum[i] = _mm256_add_epi32(isum[i], dot_scaled(lo, load32(xq), sc16[2 * c]));
        isum[i] = _mm256_add_epi32(isum[i], dot_scaled(hi, load32(xq + 32), sc16[2 * c + 1]));
      }
    }
    for (int i = 0; i < MR; ++i) {
      const float dx = x.d[i][sb];
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(d * dx), acc[i]);
      const __m256i ms = _mm256_madd_epi16(load32(x.s[i] + 16 * sb), mv);
      corr[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(dmin * dx), corr[i]);
    }
  }
  for (int i = 0; i < MR; ++i) out[i * ldy] = hsum(_mm256_sub_ps(acc[i], corr[i]));
}

template <int MR>
inline void tile_q6_k(const uint8_t* w, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
  __m256 acc[MR], corr[MR];
  for (int i = 0; i < MR; ++i) {
    acc[i] = _mm256_setzero_ps();
    corr[i] = _mm256_setzero_ps();
  }
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
  for (int64_t sb = 0; sb < k / 256; ++sb, w += 210) {
    const float d = half_at(w + 208);
    const auto* sc = reinterpret_cast<const int8_t*>(w + 192);
    __m256i isum[MR];
    for (int i = 0; i < MR; ++i) isum[i] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i a = load32(w + 64 * h), b = load32(w + 64 * h + 32), hb = load32(w + 128 + 32 * h);
      __m256i g[4];
      g[0] = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
      g[1] = _mm256_or_si256(_mm256_and_si256(b, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
      g[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
      g[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
      for (int group = 0; group < 4; ++group) {
        const int gi = 4 * h + group;  // 32-value block within the super-block
        const __m256i sc16 = _mm256_set_m128i(_mm_set1_epi16(sc[2 * gi + 1]), _mm_set1_epi16(sc[2 * gi]));
        for (int i = 0; i < MR; ++i) {
          isum[i] = _mm256_add_epi32(isum[i], dot_scaled(g[group], load32(x.q[i] + 256 * sb + 32 * gi), sc16));
        }
      }
    }
    // The levels are stored +32: subtract 32 * sum over 16-value groups of scale * sum(x).
    const __m256i scv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    for (int i = 0; i < MR; ++i) {
      const float dd = d * x.d[i][sb];
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(dd), acc[i]);
      const __m256i cs = _mm256_madd_epi16(load32(x.s[i] + 16 * sb), scv);
      corr[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(cs), _mm256_set1_ps(32.0f * dd), corr[i]);
    }
  }
  for (int i = 0; i < MR; ++i) out[i * ldy] = hsum(_mm256_sub_ps(acc[i], corr[i]));
}

template <int MR>
inline void tile(DType t, const uint8_t* w, int64_t k, const QuantizedActs& xa, int64_t i0, float* out, int64_t ldy) {
  const Rows<MR> x(xa, i0);
  switch (t) {
    case DType::kQ8_0: tile_q8_0<MR>(w, k, x, out, ldy); return;
    case DType::kQ4_0: tile_q4_q5<MR, false>(w, k, x, out, ldy); return;
    case DType::kQ5_0: tile_q4_q5<MR, true>(w, k, x, out, ldy); return;
    case DType::kQ4_K: tile_q4_k<MR>(w, k, x, out, ldy); return;
    case DType::kQ6_K: tile_q6_k<MR>(w, k, x, out, ldy); return;
    default: throw Error("qmatmul: weight type " + std::string(dtype_name(t)) + " is not block-quantized");
  }
}

#if TANDEM_QMATMUL_VNNI
// Q8_0 interleaved by 16 rows (kernels/cpu/repack.h: block pairs of 64 bytes
// of scales and 2 x 512 of weights) against MR activation rows: per 32-column
// block, eight 64-byte loads of weights, each multiplied by
// 4 activations broadcast to all lanes (one vpdpbusd per activation row), give
// the 16 rows' integer dot products in one zmm; the weights are stored + 128, so
// each sum starts at -128 * (sum of the activation block). The f16 scales of the
// 16 rows are one conversion, shared by the MR rows; the 16 outputs of a row
// are contiguous in y.
// Software prefetch of the kPrefetchAhead-th byte after each 64-byte line of
// [p, p + N): the interleaved kernels stream their groups in order, and the
// hardware prefetcher alone starts cold at every range the thread pool hands
// out (a decode step has ~120 matmuls of a few ranges each). Measured on
// 0.5B Q8_0 decode, 2 threads, 5 alternating runs: +8.1% (4 KiB ahead; 2 KiB
// was 7% slower than 4 KiB, 8 KiB about equal, 16 KiB 4% slower). Since Q8_0's
// block pairs (below) the hardware prefetcher follows that kernel alone, and
// the prefetches only cost it issue slots: Q8_0x16 no longer asks (alternating
// runs, 2 threads: 1B Q8_0 decode +7%, 0.5B Q8_0 +4%). Q5_0 (-5% without),
// Q4_K (-4%) and Q6_K (-30%) keep them.
constexpr int64_t kPrefetchAhead = 4096;
template <int64_t N>
inline void prefetch_ahead(const uint8_t* p) {
  for (int64_t o = 0; o < N; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + o), _MM_HINT_T0);
}

// One block of a Q8_0x16 group: its 16 scales at sc, its 512 bytes of weights at qb.
template <int MR>
inline void block_q8_0x16(const uint8_t* sc, const uint8_t* qb, int64_t b, const Rows<MR>& x, __m512* acc) {
  const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc)));
  __m512i isum[MR];
  for (int i = 0; i < MR; ++i) isum[i] = _mm512_set1_epi32(-128 * (x.s[i][2 * b] + x.s[i][2 * b + 1]));
  for (int c = 0; c < 8; ++c) {
    const __m512i wv = _mm512_loadu_si512(qb + 64 * c);
    for (int i = 0; i < MR; ++i) {
      int32_t x4;
      std::memcpy(&x4, x.q[i] + 32 * b + 4 * c, 4);
      isum[i] = _mm512_dpbusd_epi32(isum[i], wv, _mm512_set1_epi32(x4));
    }
  }
  for (int i = 0; i < MR; ++i) {
    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(dw, _mm512_set1_ps(x.d[i][b])), acc[i]);
  }
}

// A pair of blocks per iteration, written out twice rather than indexed: each
// load instruction then advances by the same 1088 bytes every iteration, which
// the CPU's per-instruction stride prefetcher follows (one loop over blocks, its
// loads alternating +512 and +576, streamed k = 8192 rows 7% slower), with no
// software prefetch (see prefetch_ahead).
template <int MR>
inline void tile_q8_0x16(const uint8_t* grp, int64_t nb, const Rows<MR>& x, float* out, int64_t ldy) {
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  int64_t b = 0;
  for (const uint8_t* pair = grp; b + 2 <= nb; b += 2, pair += 1088) {
    block_q8_0x16<MR>(pair, pair + 64, b, x, acc);
    block_q8_0x16<MR>(pair + 32, pair + 576, b + 1, x, acc);
  }
  if (b < nb) block_q8_0x16<MR>(grp + q8_0x16_scales_at(b), grp + q8_0x16_quants_at(b, nb), b, x, acc);
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(out + i * ldy, acc[i]);
}

// Q4_K interleaved by 16 rows (kernels/cpu/repack.h) against MR activation
// rows (quantized per 256 values). Per pair of 32-value sub-blocks, eight
// 64-byte loads hold 4 weights of each sub-block for the 16 rows (low and high
// nibbles); the unsigned 4-bit levels meet 4 broadcast activations in vpdpbusd.
// Each sub-block's int32 sums are scaled by its 6-bit scale (vpmulld), and the
// mins term, sum over sub-blocks of min * (sum of the activations), is one
// vpdpwssd per pair of sub-blocks; the super-block then meets float once.
template <int MR>
inline void tile_q4_kx16(const uint8_t* grp, int64_t nsb, const Rows<MR>& x, float* out, int64_t ldy) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = grp + 2368 * sb;
    prefetch_ahead<2368>(blk);
    __m512i isum[MR], msum[MR];
    for (int i = 0; i < MR; ++i) {
      isum[i] = _mm512_setzero_si512();
      msum[i] = _mm512_setzero_si512();
    }
    for (int c = 0; c < 4; ++c) {
      __m512i lo_sum[MR], hi_sum[MR];
      for (int i = 0; i < MR; ++i) {
        lo_sum[i] = _mm512_setzero_si512();
        hi_sum[i] = _mm512_setzero_si512();
      }
      const uint8_t* q = blk + 320 + 512 * c;
      for (int t = 0; t < 8; ++t) {
        const __m512i v = _mm512_loadu_si512(q + 64 * t);
        const __m512i lo = _mm512_and_si512(v, m4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        for (int i = 0; i < MR; ++i) {
          const int8_t* xq = x.q[i] + 256 * sb + 64 * c + 4 * t;
          int32_t xl, xh;
          std::memcpy(&xl, xq, 4);
          std::memcpy(&xh, xq + 32, 4);
          lo_sum[i] = _mm512_dpbusd_epi32(lo_sum[i], lo, _mm512_set1_epi32(xl));
          hi_sum[i] = _mm512_dpbusd_epi32(hi_sum[i], hi, _mm512_set1_epi32(xh));
        }
      }
      const __m512i sc_lo = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 64 + 32 * c)));
      const __m512i sc_hi =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 64 + 32 * c + 16)));
      for (int i = 0; i < MR; ++i) {
        isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(lo_sum[i], sc_lo));
        isum[i] = _mm512_add_epi32(isum[i], _mm512_mullo_epi32(hi_sum[i], sc_hi));
      }
    }
    for (int p = 0; p < 4; ++p) {
      const __m512i mins =
          _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 192 + 32 * p)));
      for (int i = 0; i < MR; ++i) {
        const int16_t* xs = x.s[i] + 16 * sb + 4 * p;  // sums over 16 values; sub-block 2p is xs[0] + xs[1]
        const uint32_t pair = static_cast<uint16_t>(xs[0] + xs[1]) |
                              (static_cast<uint32_t>(static_cast<uint16_t>(xs[2] + xs[3])) << 16);
        msum[i] = _mm512_dpwssd_epi32(msum[i], mins, _mm512_set1_epi32(static_cast<int>(pair)));
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32)));
    for (int i = 0; i < MR; ++i) {
      const __m512 dx = _mm512_set1_ps(x.d[i][sb]);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(d, dx), acc[i]);
      acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[i]), _mm512_mul_ps(dmin, dx), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(out + i * ldy, acc[i]);
}

// Q4_0 / Q5_0 interleaved by 16 rows against MR activation rows: per 32-column
// block, four 64-byte loads hold 8 nibbles of each of the 16 rows (columns
// 4t..4t+3 low, 16+4t..16+4t+3 high); for Q5_0 the chunk's high bits are
// stored as two 64-bit masks, loaded into mask registers that add 16 to the
// lanes whose bit is set. (The earlier layout, one byte of high bits per row
// spread over its lanes and tested bit by bit, cost 6 instructions per chunk
// instead of 4, and the kernel ran out of issue slots before memory.) The
// unsigned levels meet broadcast activations in vpdpbusd, and each sum starts
// at -offset (8 or 16) × the activation block's sum.
// One block: its 16 scales at d, its high-bit masks (Q5_0) at masks, its
// nibbles at nib.
template <int MR, bool kFive>
inline void block_q4_q5x16(const uint8_t* d, const uint8_t* masks, const uint8_t* nib, int64_t b,
                           const Rows<MR>& x, __m512* acc) {
  constexpr int kOffset = kFive ? 16 : 8;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i x10 = _mm512_set1_epi8(0x10);
  // Two chains of sums per row (low and high nibbles), each four vpdpbusd
  // deep instead of eight, joined once per block.
  __m512i isum[MR], isum_hi[MR];
  for (int i = 0; i < MR; ++i) {
    isum[i] = _mm512_set1_epi32(-kOffset * (x.s[i][2 * b] + x.s[i][2 * b + 1]));
    isum_hi[i] = _mm512_setzero_si512();
  }
  for (int t = 0; t < 4; ++t) {
    const __m512i v = _mm512_loadu_si512(nib + 64 * t);
    __m512i lo = _mm512_and_si512(v, m4);
    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    if constexpr (kFive) {
      uint64_t mask[2];
      std::memcpy(mask, masks + 16 * t, 16);
      lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(mask[0]), lo, x10);
      hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(mask[1]), hi, x10);
    }
    for (int i = 0; i < MR; ++i) {
      const int8_t* xq = x.q[i] + 32 * b + 4 * t;
      int32_t xl, xh;
      std::memcpy(&xl, xq, 4);
      std::memcpy(&xh, xq + 16, 4);
      isum[i] = _mm512_dpbusd_epi32(isum[i], lo, _mm512_set1_epi32(xl));
      isum_hi[i] = _mm512_dpbusd_epi32(isum_hi[i], hi, _mm512_set1_epi32(xh));
    }
  }
  const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d)));
  for (int i = 0; i < MR; ++i) {
    const __m512i sum = _mm512_add_epi32(isum[i], isum_hi[i]);
    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dv, _mm512_set1_ps(x.d[i][b])), acc[i]);
  }
}

// Pairs of blocks (kernels/cpu/repack.h), written out twice so that each load
// instruction advances by the same 576 / 704 bytes, line-aligned (the
// 288 / 352-byte single blocks put every other block's loads across two lines).
template <int MR, bool kFive>
inline void tile_q4_q5x16(const uint8_t* grp, int64_t nb, const Rows<MR>& x, float* out, int64_t ldy) {
  constexpr int64_t kPair = kFive ? 704 : 576, kMasks = 64, kNib = kFive ? 192 : 64;
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  int64_t b = 0;
  for (const uint8_t* pair = grp; b + 2 <= nb; b += 2, pair += kPair) {
    prefetch_ahead<kPair>(pair);
    block_q4_q5x16<MR, kFive>(pair, pair + kMasks, pair + kNib, b, x, acc);
    block_q4_q5x16<MR, kFive>(pair + 32, pair + kMasks + 64, pair + kNib + 256, b + 1, x, acc);
  }
  if (b < nb) {
    const Q4Q5x16Offsets at = q4_q5x16_block_at(b, nb, kFive);
    block_q4_q5x16<MR, kFive>(grp + at.d, grp + at.masks, grp + at.nibbles, b, x, acc);
  }
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(out + i * ldy, acc[i]);
}

template <bool kFive>
struct Q4_Q5x16 {
  static constexpr int kMr = 8;
  template <int MR>
  static void tile(const uint8_t* grp, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
    tile_q4_q5x16<MR, kFive>(grp, k / 32, x, out, ldy);
  }
};

// Q6_K interleaved by 16 rows against MR activation rows. Per chunk of 4
// columns, three 64-byte loads give the 6-bit levels of 4 blocks of 32 for the
// 16 rows (nibbles of two block pairs, and the 2-bit highs of all four), each
// meeting broadcast activations in vpdpbusd. The 16-value sub-blocks' int8
// scales multiply the 16 rows' sums (vpmulld) after each half of a block; the
// +32 of the levels comes off through one vpdpwssd per block of the scales
// against the activations' 16-value sums.
template <int MR>
inline void tile_q6_kx16(const uint8_t* grp, int64_t nsb, const Rows<MR>& x, float* out, int64_t ldy) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = grp + 3360 * sb;
    prefetch_ahead<3360>(blk);
    __m512i ssum[MR], msum[MR];
    for (int i = 0; i < MR; ++i) {
      ssum[i] = _mm512_setzero_si512();
      msum[i] = _mm512_setzero_si512();
    }
    for (int q = 0; q < 2; ++q) {
      for (int half = 0; half < 2; ++half) {
        __m512i part[MR][4];
        for (int i = 0; i < MR; ++i) {
          for (int g = 0; g < 4; ++g) part[i][g] = _mm512_setzero_si512();
        }
        for (int tt = 0; tt < 4; ++tt) {
          const int t = 4 * half + tt;
          const __m512i va = _mm512_loadu_si512(blk + 288 + 512 * (2 * q) + 64 * t);
          const __m512i vb = _mm512_loadu_si512(blk + 288 + 512 * (2 * q + 1) + 64 * t);
          const __m512i hv = _mm512_loadu_si512(blk + 2336 + 512 * q + 64 * t);
          __m512i u[4];
          u[0] = _mm512_or_si512(_mm512_and_si512(va, m4), _mm512_and_si512(_mm512_slli_epi16(hv, 4), m30));
          u[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(va, 4), m4),
                                 _mm512_and_si512(_mm512_slli_epi16(hv, 2), m30));
          u[2] = _mm512_or_si512(_mm512_and_si512(vb, m4), _mm512_and_si512(hv, m30));
          u[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(vb, 4), m4),
                                 _mm512_and_si512(_mm512_srli_epi16(hv, 2), m30));
          for (int i = 0; i < MR; ++i) {
            for (int g = 0; g < 4; ++g) {
              int32_t x4;
              std::memcpy(&x4, x.q[i] + 256 * sb + 32 * (4 * q + g) + 4 * t, 4);
              part[i][g] = _mm512_dpbusd_epi32(part[i][g], u[g], _mm512_set1_epi32(x4));
            }
          }
        }
        for (int g = 0; g < 4; ++g) {
          // Scales of block 4q+g as int16 pairs per row; this half's is the low or high one.
          const __m512i pairs =
              _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32 + 32 * (4 * q + g))));
          const __m512i sc = half == 0 ? _mm512_srai_epi32(_mm512_slli_epi32(pairs, 16), 16)
                                       : _mm512_srai_epi32(pairs, 16);
          for (int i = 0; i < MR; ++i) ssum[i] = _mm512_add_epi32(ssum[i], _mm512_mullo_epi32(part[i][g], sc));
        }
      }
    }
    for (int p = 0; p < 8; ++p) {
      const __m512i pairs =
          _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32 + 32 * p)));
      for (int i = 0; i < MR; ++i) {
        const int16_t* xs = x.s[i] + 16 * sb + 2 * p;
        const uint32_t pair =
            static_cast<uint16_t>(xs[0]) | (static_cast<uint32_t>(static_cast<uint16_t>(xs[1])) << 16);
        msum[i] = _mm512_dpwssd_epi32(msum[i], pairs, _mm512_set1_epi32(static_cast<int>(pair)));
      }
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
    for (int i = 0; i < MR; ++i) {
      const __m512i total = _mm512_sub_epi32(ssum[i], _mm512_slli_epi32(msum[i], 5));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(d, _mm512_set1_ps(x.d[i][sb])), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(out + i * ldy, acc[i]);
}

struct Q6_Kx16 {
  static constexpr int kMr = 2;
  template <int MR>
  static void tile(const uint8_t* grp, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
    tile_q6_kx16<MR>(grp, k / 256, x, out, ldy);
  }
};

struct Q8_0x16 {
  static constexpr int kMr = 8;
  template <int MR>
  static void tile(const uint8_t* grp, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
    tile_q8_0x16<MR>(grp, k / 32, x, out, ldy);
  }
};
struct Q4_Kx16 {
  static constexpr int kMr = 4;
  template <int MR>
  static void tile(const uint8_t* grp, int64_t k, const Rows<MR>& x, float* out, int64_t ldy) {
    tile_q4_kx16<MR>(grp, k / 256, x, out, ldy);
  }
};

// Up to K::kMr activation rows at once: the tile for MR rows, or fewer.
template <class K, int MR>
inline void packed_tiles(const uint8_t* grp, int64_t k, const QuantizedActs& xa, int64_t i, int64_t rows, float* out,
                         int64_t ldy) {
  if constexpr (MR > 0) {
    if (rows == MR) {
      K::template tile<MR>(grp, k, Rows<MR>(xa, i), out, ldy);
    } else {
      packed_tiles<K, MR - 1>(grp, k, xa, i, rows, out, ldy);
    }
  }
}

// Rows [r0, r1) (multiples of 16) of an interleaved matrix.
template <class K>
inline void packed_rows(const QuantizedActs& xa, const void* w, size_t group_bytes, int64_t r0, int64_t r1, float* y,
                        int64_t ldy) {
  // Activation rows in blocks that stay in cache while the groups stream past;
  // each weight vector is loaded once per K::kMr activation rows.
  constexpr int64_t kRowBlock = 64;
  for (int64_t ib = 0; ib < xa.m; ib += kRowBlock) {
    const int64_t ie = std::min(xa.m, ib + kRowBlock);
    for (int64_t r = r0; r < r1; r += 16) {
      const auto* grp = static_cast<const uint8_t*>(w) + static_cast<size_t>(r / 16) * group_bytes;
      for (int64_t i = ib; i < ie; i += K::kMr) {
        packed_tiles<K, K::kMr>(grp, xa.k, xa, i, std::min<int64_t>(K::kMr, ie - i), y + i * ldy + r, ldy);
      }
    }
  }
}
#endif

inline void qmatmul_rows_x86(const QuantizedActs& xa, const void* w, DType wtype, int64_t r0, int64_t r1, float* y,
                             int64_t ldy) {
  if (dtype_unpacked(wtype) != wtype) {
#if TANDEM_QMATMUL_VNNI
    const size_t group_bytes = dtype_row_bytes(wtype, xa.k) * 16;
    switch (wtype) {
      case DType::kQ8_0x16: packed_rows<Q8_0x16>(xa, w, group_bytes, r0, r1, y, ldy); break;
      case DType::kQ4_Kx16: packed_rows<Q4_Kx16>(xa, w, group_bytes, r0, r1, y, ldy); break;
      case DType::kQ4_0x16: packed_rows<Q4_Q5x16<false>>(xa, w, group_bytes, r0, r1, y, ldy); break;
      case DType::kQ6_Kx16: packed_rows<Q6_Kx16>(xa, w, group_bytes, r0, r1, y, ldy); break;
      default: packed_rows<Q4_Q5x16<true>>(xa, w, group_bytes, r0, r1, y, ldy); break;
    }
    return;
#else
    throw Error("qmatmul: " + std::string(dtype_name(wtype)) +
                " has no AVX2 kernel (matmul.cpp unpacks it for this backend)");
#endif
  }
  const int64_t k = xa.k;
  const size_t row_bytes = dtype_row_bytes(wtype, k);
  // Tall activations (prefill) in blocks of rows that stay in cache while the
  // task's weight rows stream past; each weight block is decoded once per 4 rows.
  constexpr int64_t kRowBlock = 64;
  for (int64_t ib = 0; ib < xa.m; ib += kRowBlock) {
    const int64_t ie = std::min(xa.m, ib + kRowBlock);
    for (int64_t r = r0; r < r1; ++r) {
      const auto* wr = static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * row_bytes;
      int64_t i = ib;
      for (; i + 4 <= ie; i += 4) tile<4>(wtype, wr, k, xa, i, y + i * ldy + r, ldy);
      switch (ie - i) {
        case 3: tile<3>(wtype, wr, k, xa, i, y + i * ldy + r, ldy); break;
        case 2: tile<2>(wtype, wr, k, xa, i, y + i * ldy + r, ldy); break;
        case 1: tile<1>(wtype, wr, k, xa, i, y + i * ldy + r, ldy); break;
        default: break;
      }
    }
  }
}

inline void quantize_acts_x86(const float* x, int64_t i0, int64_t i1, QuantizedActs& xa) {
  const int64_t k = xa.k, bs = xa.block;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = i0; i < i1; ++i) {
    const float* xr = x + i * k;
    int8_t* q = xa.q.data() + i * k;
    for (int64_t b = 0; b < k / bs; ++b) {
      const float* xb = xr + bs * b;
      __m256 mx = _mm256_setzero_ps();
      for (int64_t j = 0; j < bs; j += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)));
      __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
      m = _mm_max_ps(m, _mm_movehl_ps(m, m));
      m = _mm_max_ss(m, _mm_movehdup_ps(m));
      const float amax = _mm_cvtss_f32(m);
      const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
      xa.d[static_cast<size_t>(i * (k / bs) + b)] = amax / 127.0f;
      const __m256 idv = _mm256_set1_ps(id);
      for (int64_t c = 0; c < bs; c += 32) {
        __m256i qi[4];
        for (int j = 0; j < 4; ++j) qi[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + c + 8 * j), idv));
        const size_t g = static_cast<size_t>(i * (k / 16) + (bs * b + c) / 16);
        xa.s[g] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(qi[0], qi[1])));
        xa.s[g + 1] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(qi[2], qi[3])));
        const __m256i p01 = _mm256_packs_epi32(qi[0], qi[1]);
        const __m256i p23 = _mm256_packs_epi32(qi[2], qi[3]);
        const __m256i p =
            _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + bs * b + c), p);
      }
    }
  }
}

}  // namespace
}  // namespace tandem::kernels

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
