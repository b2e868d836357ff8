// Every matmul backend equals the scalar reference on fresh random inputs, at
// several shapes including odd ones, for every weight dtype.
#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

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

INSTANTIATE_TEST_SUITE_P(Dtypes, MatmulBackends, ::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace
}  // namespace tandem
