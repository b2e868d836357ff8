#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/vec.h"

namespace tandem::kernels {

void rmsnorm(const float* x, const float* w, float offset, int64_t rows, int64_t n, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] * inv) * (w[i] + offset);
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void add_bias(float* x, const float* b, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) add_inplace(x + r * n, b, n);
}

void scale_inplace(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) { vec::silu_mul(gate, up, n, out); }

void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    float t = std::tanh(kSqrt2OverPi * (g + 0.044715f * g * g * g));
    out[i] = 0.5f * g * (1.0f + t) * up[i];
  }
}

void softcap_inplace(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] / cap) * cap;
}

void rope_apply(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, const float* cos, const float* sin) {
  const int64_t half = rot_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      float a = xh[i];
      float b = xh[i + half];
      xh[i] = a * cos[i] - b * sin[i];
      xh[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

namespace {

// One implementation for contiguous and paged keys/values (KvRows), so every
// layout and batching does the same arithmetic in the same order (a batched,
// paged forward equals the one-sequence one bit for bit). Query qi against key/
// value head kvh, for all the query heads that share it (attention.h).
// Per-thread scratch of attend_group for contexts up to `ctx` positions.
struct AttendScratch {
  std::vector<float> scores;
  std::vector<const float*> rows;
  AttendScratch(int64_t group, int64_t ctx)
      : scores(static_cast<size_t>(attend_scores_size(group, ctx))), rows(static_cast<size_t>(2 * ctx)) {}
};

void attend_query(const float* q, int64_t qi, int64_t kvh, int64_t pos0, const KvRows& k, const KvRows& v,
                  const AttentionParams& p, AttendScratch& scratch, float* out) {
  const int64_t group = p.n_heads / p.n_kv_heads;
  const int64_t hd = p.head_dim;
  const int64_t q_stride = p.n_heads * hd;
  const int64_t pos = pos0 + qi;
  AttendGroupArgs a;
  a.q = q + qi * q_stride + kvh * group * hd;
  a.group = group;
  a.head_dim = hd;
  a.k = k;
  a.v = v;
  a.kv_offset = kvh * hd;
  a.first = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
  a.last = pos;
  a.scale = p.scale;
  a.softcap = p.softcap;
  a.scores = scratch.scores.data();
  a.rows = scratch.rows.data();
  a.out = out + qi * q_stride + kvh * group * hd;
  attend_group(a);
}

void check_heads(const AttentionParams& p) {
  TANDEM_CHECK(p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0,
               "attention: query heads are not a multiple of key/value heads");
}

// Work items are (query, key/value head) pairs.
void attention_impl(const float* q, int64_t n_q, int64_t pos0, const KvRows& k, const KvRows& v,
                    const AttentionParams& p, float* out, ThreadPool& pool) {
  check_heads(p);
  const int64_t group = p.n_heads / p.n_kv_heads;
  pool.parallel_for(n_q * p.n_kv_heads, [&](int64_t t0, int64_t t1) {
    AttendScratch scratch(group, pos0 + n_q);
    for (int64_t t = t0; t < t1; ++t) {
      attend_query(q, t / p.n_kv_heads, t % p.n_kv_heads, pos0, k, v, p, scratch, out);
    }
  });
}

}  // namespace

void attention(const float* q, int64_t n_q, int64_t pos0, const float* k, const float* v, int64_t kv_stride,
               const AttentionParams& p, float* out, ThreadPool& pool) {
  const float* kb[1] = {k};
  const float* vb[1] = {v};
  const int64_t rows = std::max<int64_t>(1, pos0 + n_q);
  attention_impl(q, n_q, pos0, KvRows{kb, rows, kv_stride}, KvRows{vb, rows, kv_stride}, p, out, pool);
}

void attention_paged(const float* q, int64_t n_q, int64_t pos0, std::span<const float* const> k_blocks,
                     std::span<const float* const> v_blocks, int64_t block_size, int64_t kv_stride,
                     const AttentionParams& p, float* out, ThreadPool& pool) {
  TANDEM_CHECK(static_cast<int64_t>(k_blocks.size()) * block_size >= pos0 + n_q &&
                   k_blocks.size() == v_blocks.size(),
               "attention_paged: block table shorter than the context");
  attention_impl(q, n_q, pos0, KvRows{k_blocks.data(), block_size, kv_stride},
                 KvRows{v_blocks.data(), block_size, kv_stride}, p, out, pool);
}

void attention_paged_batch(std::span<const PagedAttentionJob> jobs, const AttentionParams& p, ThreadPool& pool) {
  // One parallel_for over every (sequence, query, key/value head) of the batch:
  // many short decode sequences would otherwise each pay a dispatch of their own.
  check_heads(p);
  const int64_t group = p.n_heads / p.n_kv_heads;
  std::vector<int64_t> starts(jobs.size() + 1, 0);
  int64_t longest = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const auto& j = jobs[i];
    TANDEM_CHECK(static_cast<int64_t>(j.k_blocks.size()) * j.block_size >= j.pos0 + j.n_q &&
                     j.k_blocks.size() == j.v_blocks.size(),
                 "attention_paged_batch: block table shorter than the context");
    starts[i + 1] = starts[i] + j.n_q * p.n_kv_heads;
    longest = std::max(longest, j.pos0 + j.n_q);
  }
  pool.parallel_for(starts.back(), [&](int64_t t0, int64_t t1) {
    AttendScratch scratch(group, longest);
    size_t i = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), t0) - starts.begin()) - 1;
    for (int64_t t = t0; t < t1; ++t) {
      while (t >= starts[i + 1]) ++i;
      const PagedAttentionJob& j = jobs[i];
      const int64_t local = t - starts[i];
      attend_query(j.q, local / p.n_kv_heads, local % p.n_kv_heads, j.pos0,
                   KvRows{j.k_blocks.data(), j.block_size, j.kv_stride},
                   KvRows{j.v_blocks.data(), j.block_size, j.kv_stride}, p, scratch, j.out);
    }
  });
}

}  // namespace tandem::kernels
