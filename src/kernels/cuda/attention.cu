// Paged attention (kernels.h): one warp per (query row, head). The lanes split
// head_dim (lane l holds dims l, l+32, ...), so every key and value row is read
// with coalesced loads; each key's score is a warp reduction, folded into an
// online softmax (running max m, running sum l, rescaled accumulator) so the
// scores are never stored. Decode and prefill are the same kernel: a row knows
// its sequence and position, and attends causally to keys first..pos.
//
// The row's code is __host__ __device__ so attention_emulated() can run it on
// the CPU for tests (addressing, GQA, window, soft-cap, online softmax).
//
// Straightforward on purpose: one warp reduction per key serializes long
// prefills; splitting keys over warps (flash-decoding) and tiling queries in
// shared memory are the next steps once it can be measured on a GPU.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.h"

namespace tandem::kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

// Sum over the 32 lanes of what each caller computed for its own lanes: on the
// device a thread is one lane and this is a warp reduction; on the host
// (attention_emulated) one caller runs all 32 lanes and has summed them already.
template <int kLanes>
__host__ __device__ __forceinline__ float lanes_total(float part) {
  if constexpr (kLanes == 32) {
    return part;
  } else {
#ifdef __CUDA_ARCH__
    return warp_sum(part);
#else
    return part;  // not reached: the host always runs 32 lanes
#endif
  }
}

// Attention of one query row and head over its sequence's keys first..pos, for
// kLanes lanes starting at lane0 (lane l holds dims l, l + 32, ...).
template <int kPerLane, int kLanes>
__host__ __device__ void attend(const float* q, int64_t row, int32_t seq, int64_t pos, int h,
                                int lane0, const PagedKv& kv, const AttentionShape& sh,
                                float* out) {
  const int kvh = h / (sh.n_heads / sh.n_kv_heads);
  const int64_t q_dim = int64_t(sh.n_heads) * sh.head_dim;
  const float* qh = q + row * q_dim + int64_t(h) * sh.head_dim;
  float qr[kLanes][kPerLane], acc[kLanes][kPerLane];
  for (int L = 0; L < kLanes; ++L) {
    TANDEM_UNROLL
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane0 + L + 32 * j;
      qr[L][j] = d < sh.head_dim ? qh[d] : 0.0f;
      acc[L][j] = 0.0f;
    }
  }

  const int32_t* table = kv.block_tables + int64_t(seq) * kv.max_blocks;
  const int64_t first = sh.window > 0 && pos - sh.window + 1 > 0 ? pos - sh.window + 1 : 0;
  float m = -INFINITY, l = 0.0f;
  for (int64_t p = first; p <= pos; ++p) {
    const int64_t off = int64_t(table[p / kv.block_size]) * kv.block_stride +
                        (p % kv.block_size) * kv.row_stride + int64_t(kvh) * sh.head_dim;
    const float* kr = kv.k_cache + off;
    float part = 0.0f;
    for (int L = 0; L < kLanes; ++L) {
      TANDEM_UNROLL
      for (int j = 0; j < kPerLane; ++j) {
        const int d = lane0 + L + 32 * j;
        if (d < sh.head_dim) part += qr[L][j] * kr[d];
      }
    }
    float s = lanes_total<kLanes>(part) * sh.scale;
    if (sh.softcap > 0.0f) s = tanhf(s / sh.softcap) * sh.softcap;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float e = expf(s - m_new);
    l = l * corr + e;
    const float* vr = kv.v_cache + off;
    for (int L = 0; L < kLanes; ++L) {
      TANDEM_UNROLL
      for (int j = 0; j < kPerLane; ++j) {
        const int d = lane0 + L + 32 * j;
        acc[L][j] = acc[L][j] * corr + (d < sh.head_dim ? e * vr[d] : 0.0f);
      }
    }
    m = m_new;
  }
  float* oh = out + row * q_dim + int64_t(h) * sh.head_dim;
  const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
  for (int L = 0; L < kLanes; ++L) {
    TANDEM_UNROLL
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane0 + L + 32 * j;
      if (d < sh.head_dim) oh[d] = acc[L][j] * inv_l;
    }
  }
}

template <int kPerLane, bool kDecode>
__global__ void paged_attention_kernel(const float* q, const int32_t* seq_or_len,
                                       const int32_t* q_pos, PagedKv kv, AttentionShape sh,
                                       float* out) {
  const int h = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (h >= sh.n_heads) return;
  const int64_t row = blockIdx.y;
  const int32_t seq = kDecode ? static_cast<int32_t>(row) : seq_or_len[row];
  const int64_t pos = kDecode ? int64_t(seq_or_len[row]) - 1 : int64_t(q_pos[row]);
  attend<kPerLane, 1>(q, row, seq, pos, h, static_cast<int>(threadIdx.x % 32), kv, sh, out);
}

void check_args(const char* what, int64_t n_rows, const PagedKv& kv, const AttentionShape& sh) {
  require(sh.n_heads > 0 && sh.n_kv_heads > 0 && sh.n_heads % sh.n_kv_heads == 0, what,
          "n_heads (" + std::to_string(sh.n_heads) +
              ") must be a positive multiple of n_kv_heads (" + std::to_string(sh.n_kv_heads) +
              ")");
  require(sh.head_dim > 0 && sh.head_dim <= 256, what,
          "head_dim must be in 1..256, got " + std::to_string(sh.head_dim));
  require(sh.window >= 0 && sh.softcap >= 0.0f, what, "window and softcap must be >= 0");
  require(kv.block_size > 0 && kv.max_blocks > 0 && kv.k_cache && kv.v_cache && kv.block_tables,
          what, "incomplete PagedKv");
  require(kv.row_stride >= int64_t(sh.n_kv_heads) * sh.head_dim, what,
          "row_stride smaller than kv_dim");
  require(n_rows <= 65535, what,
          "at most 65535 query rows per launch, got " + std::to_string(n_rows));
}

template <bool kDecode>
void launch(const float* q, int32_t n_rows, const int32_t* seq_or_len, const int32_t* q_pos,
            const PagedKv& kv, const AttentionShape& sh, float* out, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((sh.n_heads + kWarpsPerBlock - 1) / kWarpsPerBlock),
                  static_cast<unsigned>(n_rows));
  const dim3 block(32 * kWarpsPerBlock);
  if (sh.head_dim <= 64) {
    paged_attention_kernel<2, kDecode>
        <<<grid, block, 0, stream>>>(q, seq_or_len, q_pos, kv, sh, out);
  } else if (sh.head_dim <= 128) {
    paged_attention_kernel<4, kDecode>
        <<<grid, block, 0, stream>>>(q, seq_or_len, q_pos, kv, sh, out);
  } else {
    paged_attention_kernel<8, kDecode>
        <<<grid, block, 0, stream>>>(q, seq_or_len, q_pos, kv, sh, out);
  }
  TANDEM_CUDA_CHECK_LAUNCH("paged_attention_kernel");
}

}  // namespace

void attention_decode(const float* q, int32_t n_seqs, const int32_t* seq_lens, const PagedKv& kv,
                      const AttentionShape& shape, float* out, cudaStream_t stream) {
  check_args("cuda::attention_decode", n_seqs, kv, shape);
  if (n_seqs == 0) return;
  launch<true>(q, n_seqs, seq_lens, nullptr, kv, shape, out, stream);
}

void attention_prefill(const float* q, int32_t n_rows, const int32_t* q_seq, const int32_t* q_pos,
                       const PagedKv& kv, const AttentionShape& shape, float* out,
                       cudaStream_t stream) {
  check_args("cuda::attention_prefill", n_rows, kv, shape);
  if (n_rows == 0) return;
  launch<false>(q, n_rows, q_seq, q_pos, kv, shape, out, stream);
}

void attention_emulated(const float* q, int32_t n_rows, const int32_t* q_seq, const int32_t* q_pos,
                        const PagedKv& kv, const AttentionShape& shape, float* out) {
  check_args("cuda::attention_emulated", n_rows, kv, shape);
  for (int32_t r = 0; r < n_rows; ++r) {
    for (int h = 0; h < shape.n_heads; ++h) {
      if (shape.head_dim <= 64) {
        attend<2, 32>(q, r, q_seq[r], q_pos[r], h, 0, kv, shape, out);
      } else if (shape.head_dim <= 128) {
        attend<4, 32>(q, r, q_seq[r], q_pos[r], h, 0, kv, shape, out);
      } else {
        attend<8, 32>(q, r, q_seq[r], q_pos[r], h, 0, kv, shape, out);
      }
    }
  }
}

}  // namespace tandem::kernels::cuda
