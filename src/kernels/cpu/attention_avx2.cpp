// AVX2 + FMA body of kernels/cpu/attention.h. Per (query, key/value head), for
// blocks of up to 8 query heads:
//  - the row pointers of the positions are resolved once (no division per row);
//  - scores: each key row is loaded once for the block's heads, and the 8
//    heads' dot products are reduced together into one vector, stored
//    position-major (scores[j][8]);
//  - softmax runs across positions with the 8 heads in the lanes;
//  - values are weighed into register tiles of up to 2 heads x 4 vectors.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/exp_avx2.h"

namespace tandem::kernels {
namespace {

// Rows are head_dim floats at a stride of all heads (and paged): the hardware
// prefetcher does not follow them, so each is asked for kAhead positions early.
constexpr int64_t kAhead = 8;
inline void prefetch_row(const float* r, int64_t head_dim) {
  for (int64_t b = 0; b < head_dim * 4; b += 64) _mm_prefetch(reinterpret_cast<const char*>(r) + b, _MM_HINT_T0);
}

// The 8 horizontal sums of a[0..8) as one vector (lane g = sum of a[g]).
inline __m256 hsum8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Scores of heads [g0, g0 + GN) against the key rows krow[0..n) into s[j*8 + g]
// (lanes g >= GN set to 0). With few heads (GN <= 4), 8 / GN positions are
// taken per step, so that the 8 accumulators are 8 independent FMA chains
// whatever the group size (GN = 1 is plain multi-head attention).
template <int GN>
void scores_block(const AttendGroupArgs& a, const float* const* krow, int64_t g0, int64_t n, float* s) {
  constexpr int JN = GN <= 4 ? 8 / GN : 1;
  const int64_t nc = a.head_dim / 8;
  const float* q = a.q + g0 * a.head_dim;
  const __m256 scale = _mm256_set1_ps(a.scale);
  for (int64_t j = 0; j < std::min(n, kAhead); ++j) prefetch_row(krow[j], a.head_dim);
  int64_t j = 0;
  for (; j + JN <= n; j += JN) {
    for (int64_t u = j + kAhead; u < std::min(n, j + kAhead + JN); ++u) prefetch_row(krow[u], a.head_dim);
    __m256 acc[8];
    for (int t = 0; t < 8; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t c = 0; c < nc; ++c) {
      for (int u = 0; u < JN; ++u) {
        const __m256 kc = _mm256_loadu_ps(krow[j + u] + 8 * c);
        for (int g = 0; g < GN; ++g) {
          acc[u * GN + g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * a.head_dim + 8 * c), kc, acc[u * GN + g]);
        }
      }
    }
    const __m256 r = _mm256_mul_ps(hsum8(acc), scale);
    if constexpr (JN == 1) {
      _mm256_storeu_ps(s + 8 * j, r);
    } else {
      alignas(32) float t[8];
      _mm256_store_ps(t, r);
      for (int u = 0; u < JN; ++u) {
        alignas(32) float row[8] = {};
        for (int g = 0; g < GN; ++g) row[g] = t[u * GN + g];
        _mm256_storeu_ps(s + 8 * (j + u), _mm256_load_ps(row));
      }
    }
  }
  for (; j < n; ++j) {  // the last n % JN positions, one at a time
    __m256 acc[8];
    for (int t = 0; t < 8; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t c = 0; c < nc; ++c) {
      const __m256 kc = _mm256_loadu_ps(krow[j] + 8 * c);
      for (int g = 0; g < GN; ++g) acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * a.head_dim + 8 * c), kc, acc[g]);
    }
    _mm256_storeu_ps(s + 8 * j, _mm256_mul_ps(hsum8(acc), scale));
  }
  if (a.softcap > 0.0f) {
    for (int64_t i = 0; i < 8 * n; ++i) s[i] = std::tanh(s[i] / a.softcap) * a.softcap;
  }
}

// In place over s[j*8 + lane], j < n: e^(s - max_j) / sum_j per lane.
inline void softmax_lanes(float* s, int64_t n) {
  __m256 mx = _mm256_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n; ++j) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + 8 * j));
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + 8 * j), mx));
    _mm256_storeu_ps(s + 8 * j, e);
    sum = _mm256_add_ps(sum, e);
  }
  const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), sum);
  for (int64_t j = 0; j < n; ++j) _mm256_storeu_ps(s + 8 * j, _mm256_mul_ps(_mm256_loadu_ps(s + 8 * j), inv));
}

// out for heads g0 + h0 .. + HB, columns [8 c0, 8 (c0 + CB)): sum over j of
// s[j*8 + h] * v[j].
template <int HB, int CB>
inline void values_tile(const AttendGroupArgs& a, const float* const* vrow, const float* s, int64_t g0, int64_t h0,
                        int64_t c0, int64_t n) {
  __m256 acc[HB][CB];
  for (int h = 0; h < HB; ++h) {
    for (int c = 0; c < CB; ++c) acc[h][c] = _mm256_setzero_ps();
  }
  for (int64_t j = 0; j < n; ++j) {
    const float* vr = vrow[j] + 8 * c0;
    if (j + kAhead < n) _mm_prefetch(reinterpret_cast<const char*>(vrow[j + kAhead] + 8 * c0), _MM_HINT_T0);
    // The value vectors are memory operands of the FMAs (L1 hits after the
    // first tile); 2 x 4 accumulators: with 3 x 4, GCC spilled them.
    for (int h = 0; h < HB; ++h) {
      const __m256 p = _mm256_broadcast_ss(s + 8 * j + h0 + h);
      for (int c = 0; c < CB; ++c) acc[h][c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + 8 * c), acc[h][c]);
    }
  }
  for (int h = 0; h < HB; ++h) {
    for (int c = 0; c < CB; ++c) _mm256_storeu_ps(a.out + (g0 + h0 + h) * a.head_dim + 8 * (c0 + c), acc[h][c]);
  }
}

template <int CB>
void values_block(const AttendGroupArgs& a, const float* const* vrow, const float* s, int64_t g0, int64_t gn,
                  int64_t n) {
  const int64_t nc = a.head_dim / 8;
  for (int64_t c = 0; c < nc; c += CB) {
    int64_t h = 0;
    for (; h + 2 <= gn; h += 2) values_tile<2, CB>(a, vrow, s, g0, h, c, n);
    if (gn - h == 1) values_tile<1, CB>(a, vrow, s, g0, h, c, n);
  }
}

// rows[j] = position first + j's row + offset, walking the blocks (no division per row).
void resolve_rows(const KvRows& kv, int64_t first, int64_t n, int64_t offset, const float** rows) {
  int64_t b = first / kv.block_size, r = first % kv.block_size;
  for (int64_t j = 0; j < n; ++j) {
    rows[j] = kv.blocks[b] + r * kv.stride + offset;
    if (++r == kv.block_size) {
      r = 0;
      ++b;
    }
  }
}

}  // namespace

void attend_group_avx2(const AttendGroupArgs& a) {
  if (a.head_dim % 8 != 0) {
    attend_group_scalar(a);
    return;
  }
  const int64_t n = a.last - a.first + 1;
  const float** krow = a.rows;
  const float** vrow = a.rows + n;
  resolve_rows(a.k, a.first, n, a.kv_offset, krow);
  resolve_rows(a.v, a.first, n, a.kv_offset, vrow);
  const int64_t nc = a.head_dim / 8;
  for (int64_t g0 = 0; g0 < a.group; g0 += 8) {
    const int64_t gn = std::min<int64_t>(8, a.group - g0);
    float* s = a.scores;
    switch (gn) {
      case 1: scores_block<1>(a, krow, g0, n, s); break;
      case 2: scores_block<2>(a, krow, g0, n, s); break;
      case 3: scores_block<3>(a, krow, g0, n, s); break;
      case 4: scores_block<4>(a, krow, g0, n, s); break;
      case 5: scores_block<5>(a, krow, g0, n, s); break;
      case 6: scores_block<6>(a, krow, g0, n, s); break;
      case 7: scores_block<7>(a, krow, g0, n, s); break;
      default: scores_block<8>(a, krow, g0, n, s); break;
    }
    softmax_lanes(s, n);
    if (nc % 4 == 0) {
      values_block<4>(a, vrow, s, g0, gn, n);
    } else if (nc % 2 == 0) {
      values_block<2>(a, vrow, s, g0, gn, n);
    } else {
      values_block<1>(a, vrow, s, g0, gn, n);
    }
  }
}

}  // namespace tandem::kernels
