// Element-wise and row-wise operations of the transformer blocks (float32).
// Plain loops the compiler vectorizes; the hot path is matmul.
#pragma once

#include <cstdint>
#include <span>

#include "base/thread_pool.h"

namespace tandem::kernels {

// y[i] = x[i] / rms(x) * (w[i] + offset), rows of n elements. offset = 1 for
// Gemma's (1 + w) convention, 0 otherwise. x and y may alias.
void rmsnorm(const float* x, const float* w, float offset, int64_t rows, int64_t n, float eps, float* y);

// x += y over n elements.
void add_inplace(float* x, const float* y, int64_t n);
// x += b for each of `rows` rows of n elements.
void add_bias(float* x, const float* b, int64_t rows, int64_t n);
void scale_inplace(float* x, float s, int64_t n);

// out[i] = act(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out);

// x = tanh(x / cap) * cap
void softcap_inplace(float* x, int64_t n, float cap);

// Rotary embedding, rotate-half convention (pairs i and i + rot_dim/2) on the
// first rot_dim dims of each head; cos/sin hold rot_dim/2 values for the position.
void rope_apply(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, const float* cos, const float* sin);

struct AttentionParams {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;     // applied to q·k
  float softcap = 0.0f;   // 0: none
  int64_t window = 0;     // 0: full causal; else a query at p sees keys p-window+1..p
};

// Causal attention of n_q queries at positions pos0..pos0+n_q-1 against keys and
// values at positions 0..pos0+n_q-1. q and out: [n_q, n_heads*head_dim];
// k and v: [pos0+n_q, n_kv_heads*head_dim] with row stride kv_stride floats.
void attention(const float* q, int64_t n_q, int64_t pos0, const float* k, const float* v, int64_t kv_stride,
               const AttentionParams& p, float* out, ThreadPool& pool);

// The same over a paged cache: position j's key row is
// k_blocks[j / block_size] + (j % block_size) * kv_stride (values likewise).
// Results equal attention() on the same rows bit for bit.
void attention_paged(const float* q, int64_t n_q, int64_t pos0, std::span<const float* const> k_blocks,
                     std::span<const float* const> v_blocks, int64_t block_size, int64_t kv_stride,
                     const AttentionParams& p, float* out, ThreadPool& pool);

// Paged attention for a whole batch of sequences in one parallel pass; each job
// gives the same result as attention_paged() on it alone, bit for bit.
struct PagedAttentionJob {
  const float* q = nullptr;  // [n_q, n_heads*head_dim]
  int64_t n_q = 0;
  int64_t pos0 = 0;
  std::span<const float* const> k_blocks, v_blocks;
  int64_t block_size = 0;
  int64_t kv_stride = 0;
  float* out = nullptr;  // [n_q, n_heads*head_dim]
};
void attention_paged_batch(std::span<const PagedAttentionJob> jobs, const AttentionParams& p, ThreadPool& pool);

}  // namespace tandem::kernels
