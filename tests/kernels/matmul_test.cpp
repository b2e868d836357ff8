// Every matmul backend equals the scalar reference on fresh random inputs, at
// several shapes including odd ones, for every weight dtype.
#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "test_util.h"

namespace tandem {
namespace {

struct Weights {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  TensorView view;
};

Weights make_weights(DType t, int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Weights w;
  w.f32.resize(static_cast<size_t>(n * k));
  for (float& v : w.f32) v = nd(rng);
  w.view.dtype = t;
  w.view.shape = {n, k};
  if (t == DType::kF32) {
    w.view.data = w.f32.data();
  } else {
    w.half.resize(w.f32.size());
    for (size_t i = 0; i < w.f32.size(); ++i) w.half[i] = t == DType::kBF16 ? f32_to_bf16(w.f32[i]) : f32_to_f16(w.f32[i]);
    w.view.data = w.half.data();
  }
  return w;
}

class MatmulBackends : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulBackends, EqualScalarReference) {
  if (kernels::detected_isa() < kernels::Isa::kAvx2) GTEST_SKIP() << "CPU has no AVX2: only the scalar path exists";
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {1, 33, 17}, {3, 64, 128}, {5, 129, 96}, {4, 100, 257}, {70, 31, 288}, {130, 9, 40}};
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    Weights w = make_weights(GetParam(), n, k, rng);
    std::vector<float> x(static_cast<size_t>(m * k));
    for (float& v : x) v = nd(rng);
    std::vector<float> ref(static_cast<size_t>(m * n)), got(static_cast<size_t>(m * n) + 3, -7.0f);
    kernels::matmul_with(kernels::Isa::kScalar, x.data(), m, k, w.view, ref.data(), n, pool);
    for (int isa = int(kernels::Isa::kAvx2); isa <= int(kernels::detected_isa()); ++isa) {
      kernels::matmul_with(kernels::Isa(isa), x.data(), m, k, w.view, got.data(), n, pool);
      for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_NEAR(got[i], ref[i], 1e-4f * (1.0f + std::abs(ref[i])) * std::sqrt(float(k)))
            << kernels::isa_name(kernels::Isa(isa)) << " " << m << "x" << n << "x" << k;
      }
      EXPECT_EQ(got[ref.size()], -7.0f) << "wrote past the output";
    }
  }
}

TEST_P(MatmulBackends, ScalarMatchesDoublePrecision) {
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(1);
  const int64_t m = 3, n = 11, k = 37;
  Weights w = make_weights(GetParam(), n, k, rng);
  std::vector<float> x(static_cast<size_t>(m * k)), wf(static_cast<size_t>(n * k)), y(static_cast<size_t>(m * n));
  for (float& v : x) v = nd(rng);
  kernels::to_f32(w.view.data, w.view.dtype, n * k, wf.data());
  kernels::matmul_with(kernels::Isa::kScalar, x.data(), m, k, w.view, y.data(), n, pool);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += double(x[size_t(i * k + j)]) * wf[size_t(r * k + j)];
      EXPECT_NEAR(y[size_t(i * n + r)], acc, 1e-4);
    }
  }
}

// BF16 weights at the avx512 level take the vdpbf16ps kernel (matmul_avx512.cpp),
// whose activations are x = hi + lo in bf16: |x - hi - lo| <= 2^-18 |x| (3.8e-6)
// per product, plus float32 accumulation in a different order than the
// reference's (a few 2^-24 per term on random data). So the difference to the
// scalar reference is bounded by 1e-5 of sum |x_j w_j| (seen: 2.1e-6, at k = 1);
// rounding x to bf16 alone gives 2.1e-3 here, which the bound rejects.
TEST(MatmulBf16Avx512, EqualScalarReference) {
  if (!kernels::cpu_has_avx512_bf16()) GTEST_SKIP() << "CPU has no AVX512_BF16: the bf16 dot-product kernel never runs";
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  // Odd row counts (a 2-row tile remainder; more than one 64-row block at k = 2048),
  // weight counts that are not multiples of the 5-row tile, k not a multiple of 32,
  // k over several 2048-wide spans, and k = 0 (all zeros).
  const int64_t shapes[][3] = {{1, 1, 1},    {1, 7, 31},   {3, 5, 32},    {5, 9, 33},    {17, 66, 100},
                               {71, 33, 257}, {1, 130, 2048}, {130, 6, 2048}, {64, 4, 4096}, {2, 3, 8200}, {3, 5, 0},
                               {1, 9, 4100}, {1, 3, 0}};
  double worst = 0;
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2], ldy = n + 3;
    Weights w = make_weights(DType::kBF16, n, k, rng);
    std::vector<float> x(static_cast<size_t>(m * k)), wf(static_cast<size_t>(n * k));
    for (float& v : x) v = nd(rng);
    kernels::to_f32(w.view.data, w.view.dtype, n * k, wf.data());
    std::vector<float> ref(static_cast<size_t>(m * ldy)), got(static_cast<size_t>(m * ldy), -7.0f);
    kernels::matmul_with(kernels::Isa::kScalar, x.data(), m, k, w.view, ref.data(), ldy, pool);
    kernels::matmul_with(kernels::Isa::kAvx512, x.data(), m, k, w.view, got.data(), ldy, pool);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t r = 0; r < n; ++r) {
        double mag = 0;
        for (int64_t j = 0; j < k; ++j) mag += std::abs(double(x[size_t(i * k + j)]) * wf[size_t(r * k + j)]);
        const size_t at = size_t(i * ldy + r);
        if (mag > 0) worst = std::max(worst, std::abs(double(got[at]) - ref[at]) / mag);
        EXPECT_NEAR(got[at], ref[at], 1e-5 * mag) << m << "x" << n << "x" << k << " at " << i << "," << r;
      }
      for (int64_t r = n; r < ldy; ++r) EXPECT_EQ(got[size_t(i * ldy + r)], -7.0f) << "wrote past row " << i;
    }
  }
  std::printf("worst |got - ref| / sum|x w| = %.3g\n", worst);
}

// Every tile shape sums a row as the same chain of vdpbf16ps over k, so a row
// of activations gives the same bits alone (decode, m = 1) as inside a batch
// (prefill, continuous batching), in both activation modes. (A one-row decode
// tile with more chains would break this; see docs/architecture.md, "bf16
// decode on short rows".)
TEST(MatmulBf16Avx512, DecodeRowEqualsBatchRow) {
  if (!kernels::cpu_has_avx512_bf16()) GTEST_SKIP() << "CPU has no AVX512_BF16: the bf16 dot-product kernel never runs";
  std::mt19937 rng(79);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  for (const int64_t k : {int64_t{31}, int64_t{896}, int64_t{4100}}) {
    const int64_t m = 5, n = 23;
    Weights w = make_weights(DType::kBF16, n, k, rng);
    std::vector<float> x(static_cast<size_t>(m * k));
    for (float& v : x) v = nd(rng);
    for (const auto acts : {kernels::Bf16Activations::kSplit, kernels::Bf16Activations::kRound}) {
      std::vector<float> batch(static_cast<size_t>(m * n)), one(static_cast<size_t>(n));
      kernels::matmul_with(kernels::Isa::kAvx512, x.data(), m, k, w.view, batch.data(), n, pool, acts);
      for (int64_t i = 0; i < m; ++i) {
        kernels::matmul_with(kernels::Isa::kAvx512, x.data() + i * k, 1, k, w.view, one.data(), n, pool, acts);
        for (int64_t r = 0; r < n; ++r) {
          EXPECT_EQ(one[size_t(r)], batch[size_t(i * n + r)]) << "k " << k << " row " << i << "," << r;
        }
      }
    }
  }
}

// Bf16Activations::kRound (LoadOptions::bf16_activations): the activations are
// rounded once to bf16, so the kernel must equal a double-precision product of
// the rounded activations (bf16 x bf16 products are exact in float32; only the
// float32 accumulation differs), and must differ from the split path by about
// bf16's rounding, or the option would do nothing.
TEST(MatmulBf16Avx512, RoundedActivationsEqualRoundedReference) {
  if (!kernels::cpu_has_avx512_bf16()) GTEST_SKIP() << "CPU has no AVX512_BF16: the bf16 dot-product kernel never runs";
  std::mt19937 rng(78);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  // 4-row tiles with remainders 1..3, k not a multiple of 32, k over two spans.
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 31}, {3, 5, 33}, {6, 9, 100}, {7, 11, 257}, {130, 6, 2048}, {2, 3, 4100}, {1, 9, 4100}};
  double worst = 0, moved = 0;
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2], ldy = n + 2;
    Weights w = make_weights(DType::kBF16, n, k, rng);
    std::vector<float> x(static_cast<size_t>(m * k)), wf(static_cast<size_t>(n * k));
    for (float& v : x) v = nd(rng);
    kernels::to_f32(w.view.data, w.view.dtype, n * k, wf.data());
    std::vector<float> got(static_cast<size_t>(m * ldy), -7.0f), split(static_cast<size_t>(m * ldy));
    kernels::matmul_with(kernels::Isa::kAvx512, x.data(), m, k, w.view, got.data(), ldy, pool,
                         kernels::Bf16Activations::kRound);
    kernels::matmul_with(kernels::Isa::kAvx512, x.data(), m, k, w.view, split.data(), ldy, pool);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t r = 0; r < n; ++r) {
        double ref = 0, mag = 0;
        for (int64_t j = 0; j < k; ++j) {
          const double xr = bf16_to_f32(f32_to_bf16(x[size_t(i * k + j)]));
          ref += xr * wf[size_t(r * k + j)];
          mag += std::abs(xr * wf[size_t(r * k + j)]);
        }
        const size_t at = size_t(i * ldy + r);
        worst = std::max(worst, std::abs(got[at] - ref) / mag);
        moved = std::max(moved, std::abs(double(got[at]) - split[at]) / mag);
        EXPECT_NEAR(got[at], ref, 1e-5 * mag) << m << "x" << n << "x" << k << " at " << i << "," << r;
      }
      for (int64_t r = n; r < ldy; ++r) EXPECT_EQ(got[size_t(i * ldy + r)], -7.0f) << "wrote past row " << i;
    }
  }
  std::printf("worst |got - ref| / sum|x w| = %.3g; rounded vs split up to %.3g\n", worst, moved);
  EXPECT_GT(moved, 1e-4) << "rounding the activations changed nothing";
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MatmulBackends, ::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace
}  // namespace tandem
