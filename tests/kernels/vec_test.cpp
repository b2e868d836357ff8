// The dispatched vector primitives equal their scalar versions.
#include "kernels/cpu/vec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cpu/isa.h"

namespace tandem {
namespace {

TEST(Vec, Avx2EqualsScalar) {
  if (kernels::detected_isa() < kernels::Isa::kAvx2) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t n : {1, 7, 8, 15, 16, 17, 64, 100, 4099}) {
    const auto sz = static_cast<size_t>(n);
    std::vector<float> a(sz), b(sz), y1(sz), y2(sz);
    for (auto& v : a) v = nd(rng);
    for (auto& v : b) v = nd(rng);
    const float d1 = kernels::vec::dot_scalar(a.data(), b.data(), n), d2 = kernels::vec::dot_avx2(a.data(), b.data(), n);
    EXPECT_NEAR(d1, d2, 1e-5f * (std::sqrt(float(n)) * 9.0f + std::abs(d1))) << n;
    y1 = b;
    y2 = b;
    kernels::vec::axpy_scalar(0.7f, a.data(), y1.data(), n);
    kernels::vec::axpy_avx2(0.7f, a.data(), y2.data(), n);
    for (size_t i = 0; i < size_t(n); ++i) EXPECT_NEAR(y1[i], y2[i], 1e-6f * (1 + std::abs(y1[i])));
    kernels::vec::silu_mul_scalar(a.data(), b.data(), n, y1.data());
    kernels::vec::silu_mul_avx2(a.data(), b.data(), n, y2.data());
    for (size_t i = 0; i < size_t(n); ++i) EXPECT_NEAR(y1[i], y2[i], 2e-6f * (1 + std::abs(y1[i]))) << a[i];
  }
  std::vector<uint64_t> words(1024);
  for (size_t i = 0; i < words.size(); ++i) words[i] = i * 2654435761u;
  EXPECT_EQ(kernels::vec::sum_bytes_avx2(words.data(), 8192), kernels::vec::sum_bytes_scalar(words.data(), 8192));
  // The tails of silu: large negative gates give 0 (not NaN), large positive the gate.
  const float g[8] = {-1000, -100, -88, -20, 20, 88, 100, 1000}, u[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  float out[8];
  kernels::vec::silu_mul_avx2(g, u, 8, out);
  for (int i = 0; i < 8; ++i) {
    EXPECT_FALSE(std::isnan(out[i])) << g[i];
    EXPECT_NEAR(out[i], g[i] > 0 ? g[i] : 0.0f, 1e-5f * std::abs(g[i]) + 1e-6f) << g[i];
  }
}

}  // namespace
}  // namespace tandem
