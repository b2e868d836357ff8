#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/error.h"
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

// One implementation for contiguous and paged keys/values: krow(j) and vrow(j)
// give the row of position j, so every layout and batching does the same
// arithmetic in the same order (a batched, paged forward equals the
// one-sequence one bit for bit). Computes query qi, head h.
template <typename KRow, typename VRow>
void attend_one(const float* q, int64_t qi, int64_t h, int64_t pos0, const KRow& krow, const VRow& vrow,
                const AttentionParams& p, float* scores, float* acc, float* out) {
  const int64_t group = p.n_heads / p.n_kv_heads;
  const int64_t hd = p.head_dim;
  const int64_t q_stride = p.n_heads * hd;
  const int64_t kvh = h / group;
  const int64_t pos = pos0 + qi;
  const int64_t first = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
  const float* qh = q + qi * q_stride + h * hd;
  float max_s = -INFINITY;
  for (int64_t j = first; j <= pos; ++j) {
    float s = vec::dot(qh, krow(j) + kvh * hd, hd) * p.scale;
    if (p.softcap > 0.0f) s = std::tanh(s / p.softcap) * p.softcap;
    scores[j] = s;
    max_s = std::max(max_s, s);
  }
  float sum = 0.0f;
  for (int64_t j = first; j <= pos; ++j) {
    float e = std::exp(scores[j] - max_s);
    scores[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  std::fill(acc, acc + hd, 0.0f);
  for (int64_t j = first; j <= pos; ++j) {
    vec::axpy(scores[j] * inv, vrow(j) + kvh * hd, acc, hd);
  }
  std::copy(acc, acc + hd, out + qi * q_stride + h * hd);
}

template <typename KRow, typename VRow>
void attention_impl(const float* q, int64_t n_q, int64_t pos0, const KRow& krow, const VRow& vrow,
                    const AttentionParams& p, float* out, ThreadPool& pool) {
  pool.parallel_for(n_q * p.n_heads, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(static_cast<size_t>(pos0 + n_q));
    std::vector<float> acc(static_cast<size_t>(p.head_dim));
    for (int64_t t = t0; t < t1; ++t) {
      attend_one(q, t / p.n_heads, t % p.n_heads, pos0, krow, vrow, p, scores.data(), acc.data(), out);
    }
  });
}

}  // namespace

void attention(const float* q, int64_t n_q, int64_t pos0, const float* k, const float* v, int64_t kv_stride,
               const AttentionParams& p, float* out, ThreadPool& pool) {
  attention_impl(
      q, n_q, pos0, [&](int64_t j) { return k + j * kv_stride; }, [&](int64_t j) { return v + j * kv_stride; }, p,
      out, pool);
}

void attention_paged(const float* q, int64_t n_q, int64_t pos0, std::span<const float* const> k_blocks,
                     std::span<const float* const> v_blocks, int64_t block_size, int64_t kv_stride,
                     const AttentionParams& p, float* out, ThreadPool& pool) {
  TANDEM_CHECK(static_cast<int64_t>(k_blocks.size()) * block_size >= pos0 + n_q &&
                   k_blocks.size() == v_blocks.size(),
               "attention_paged: block table shorter than the context");
  attention_impl(
      q, n_q, pos0,
      [&](int64_t j) { return k_blocks[static_cast<size_t>(j / block_size)] + (j % block_size) * kv_stride; },
      [&](int64_t j) { return v_blocks[static_cast<size_t>(j / block_size)] + (j % block_size) * kv_stride; }, p,
      out, pool);
}

void attention_paged_batch(std::span<const PagedAttentionJob> jobs, const AttentionParams& p, ThreadPool& pool) {
  // One parallel_for over every (sequence, query, head) of the batch: many short
  // decode sequences would otherwise each pay a dispatch of their own.
  std::vector<int64_t> starts(jobs.size() + 1, 0);
  int64_t longest = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const auto& j = jobs[i];
    TANDEM_CHECK(static_cast<int64_t>(j.k_blocks.size()) * j.block_size >= j.pos0 + j.n_q &&
                     j.k_blocks.size() == j.v_blocks.size(),
                 "attention_paged_batch: block table shorter than the context");
    starts[i + 1] = starts[i] + j.n_q * p.n_heads;
    longest = std::max(longest, j.pos0 + j.n_q);
  }
  pool.parallel_for(starts.back(), [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(static_cast<size_t>(longest));
    std::vector<float> acc(static_cast<size_t>(p.head_dim));
    size_t i = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), t0) - starts.begin()) - 1;
    for (int64_t t = t0; t < t1; ++t) {
      while (t >= starts[i + 1]) ++i;
      const PagedAttentionJob& j = jobs[i];
      const int64_t local = t - starts[i];
      auto krow = [&](int64_t r) {
        return j.k_blocks[static_cast<size_t>(r / j.block_size)] + (r % j.block_size) * j.kv_stride;
      };
      auto vrow = [&](int64_t r) {
        return j.v_blocks[static_cast<size_t>(r / j.block_size)] + (r % j.block_size) * j.kv_stride;
      };
      attend_one(j.q, local / p.n_heads, local % p.n_heads, j.pos0, krow, vrow, p, scores.data(), acc.data(), j.out);
    }
  });
}

}  // namespace tandem::kernels
