#include "kernels/cpu/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

namespace tandem {
namespace {

TEST(Ops, RmsNormMatchesDefinition) {
  std::vector<float> x = {1, -2, 3, 0.5f}, w = {1, 2, 0.5f, -1}, y(4);
  kernels::rmsnorm(x.data(), w.data(), 0.0f, 1, 4, 1e-6f, y.data());
  double rms = std::sqrt((1 + 4 + 9 + 0.25) / 4.0 + 1e-6);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[size_t(i)], x[size_t(i)] / rms * w[size_t(i)], 1e-6);
  kernels::rmsnorm(x.data(), w.data(), 1.0f, 1, 4, 1e-6f, y.data());  // Gemma (1 + w)
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[size_t(i)], x[size_t(i)] / rms * (1 + w[size_t(i)]), 1e-6);
}

TEST(Ops, ActivationsMatchDefinitions) {
  std::vector<float> g = {-3, -0.5f, 0, 0.7f, 4}, u = {1, 2, 3, 4, 5}, out(5);
  kernels::silu_mul(g.data(), u.data(), 5, out.data());
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-g[i])) * u[i], 1e-6);
  kernels::gelu_tanh_mul(g.data(), u.data(), 5, out.data());
  for (size_t i = 0; i < 5; ++i) {
    double x = g[i];
    double ref = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))) * u[i];
    EXPECT_NEAR(out[i], ref, 1e-5);
  }
}

TEST(Ops, RopeRotatesHalves) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6};  // one head, head_dim 6, rot_dim 4: dim 4,5 pass through
  float c[2] = {std::cos(0.3f), std::cos(0.1f)}, s[2] = {std::sin(0.3f), std::sin(0.1f)};
  kernels::rope_apply(x.data(), 1, 6, 4, c, s);
  EXPECT_NEAR(x[0], 1 * c[0] - 3 * s[0], 1e-6);
  EXPECT_NEAR(x[2], 3 * c[0] + 1 * s[0], 1e-6);
  EXPECT_NEAR(x[1], 2 * c[1] - 4 * s[1], 1e-6);
  EXPECT_NEAR(x[3], 4 * c[1] + 2 * s[1], 1e-6);
  EXPECT_EQ(x[4], 5);
  EXPECT_EQ(x[5], 6);
}

// Naive double-precision attention for one query against keys 0..pos.
void reference_attention(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                         int64_t n_q, int64_t pos0, const kernels::AttentionParams& p, std::vector<double>& out) {
  const int64_t hd = p.head_dim, kvd = p.n_kv_heads * hd, qd = p.n_heads * hd;
  out.assign(static_cast<size_t>(n_q * qd), 0.0);
  for (int64_t i = 0; i < n_q; ++i) {
    for (int64_t h = 0; h < p.n_heads; ++h) {
      int64_t kvh = h / (p.n_heads / p.n_kv_heads), pos = pos0 + i;
      std::vector<double> s;
      int64_t first = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
      for (int64_t j = first; j <= pos; ++j) {
        double d = 0;
        for (int64_t t = 0; t < hd; ++t) d += double(q[size_t(i * qd + h * hd + t)]) * k[size_t(j * kvd + kvh * hd + t)];
        d *= p.scale;
        if (p.softcap > 0) d = std::tanh(d / p.softcap) * p.softcap;
        s.push_back(d);
      }
      double mx = *std::max_element(s.begin(), s.end()), sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (int64_t j = first; j <= pos; ++j) {
        for (int64_t t = 0; t < hd; ++t) {
          out[size_t(i * qd + h * hd + t)] += s[size_t(j - first)] / sum * v[size_t(j * kvd + kvh * hd + t)];
        }
      }
    }
  }
}

TEST(Ops, AttentionMatchesNaiveReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  ThreadPool pool(2);
  for (int64_t window : {0, 1, 5}) {
    for (float softcap : {0.0f, 2.0f}) {
      kernels::AttentionParams p{6, 2, 8, 0.35f, softcap, window};
      const int64_t pos0 = 9, n_q = 4, ctx = pos0 + n_q;
      std::vector<float> q(size_t(n_q * 6 * 8)), k(size_t(ctx * 16)), v(size_t(ctx * 16)), out(q.size());
      for (auto* vec : {&q, &k, &v}) for (float& x : *vec) x = nd(rng);
      kernels::attention(q.data(), n_q, pos0, k.data(), v.data(), 16, p, out.data(), pool);
      std::vector<double> ref;
      reference_attention(q, k, v, n_q, pos0, p, ref);
      for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 1e-5) << "window " << window;
    }
  }
}

// Decode-like shapes of real models: 14 query heads on 2 key/value heads of 64
// (Qwen2.5-0.5B) and 8 on 8 of 96 (no grouping), at a context past the vector
// width, through the active ISA's kernel.
TEST(Ops, AttentionMatchesNaiveReferenceAtModelShapes) {
  std::mt19937 rng(8);
  std::normal_distribution<float> nd;
  ThreadPool pool(2);
  for (auto [heads, kv_heads, hd] : {std::tuple<int64_t, int64_t, int64_t>{14, 2, 64}, {8, 8, 96}}) {
    kernels::AttentionParams p{heads, kv_heads, hd, 1.0f / std::sqrt(float(hd)), 0.0f, 0};
    const int64_t pos0 = 137, n_q = 3, ctx = pos0 + n_q, kvd = kv_heads * hd;
    std::vector<float> q(size_t(n_q * heads * hd)), k(size_t(ctx * kvd)), v(size_t(ctx * kvd)), out(q.size());
    for (auto* vec : {&q, &k, &v}) for (float& x : *vec) x = nd(rng);
    kernels::attention(q.data(), n_q, pos0, k.data(), v.data(), kvd, p, out.data(), pool);
    std::vector<double> ref;
    reference_attention(q, k, v, n_q, pos0, p, ref);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5) << heads << "/" << kv_heads << " at " << i;
  }
}

}  // namespace
}  // namespace tandem
