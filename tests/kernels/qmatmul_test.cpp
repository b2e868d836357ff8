// The quantized matmul: every SIMD backend equals the scalar reference, the
// activation quantizers agree bit for bit, and the scalar reference equals a
// double-precision product with the dequantized weights up to the activations'
// 8-bit rounding. Also the quality of our Q4_K/Q6_K quantizers.
#include "kernels/cpu/qmatmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "base/error.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/repack.h"
#include "tensor/ggml_quant.h"
#include "test_util.h"

namespace tandem {
namespace {

struct QWeights {
  std::vector<float> f32;       // the original values
  std::vector<float> deq;       // what the quantized rows decode to
  std::vector<uint8_t> bytes;
  TensorView view;
};

QWeights make_qweights(DType t, int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  QWeights w;
  w.f32.resize(static_cast<size_t>(n * k));
  for (float& v : w.f32) v = nd(rng);
  // A few outliers, as real weights have.
  for (size_t i = 0; i < w.f32.size(); i += 97) w.f32[i] *= 6.0f;
  const GgmlType g = *ggml_from_dtype(t);
  const size_t rb = dtype_row_bytes(t, k);
  w.bytes.resize(rb * static_cast<size_t>(n) + 1);
  w.deq.resize(w.f32.size());
  for (int64_t r = 0; r < n; ++r) {
    quantize_row(g, w.f32.data() + r * k, w.bytes.data() + static_cast<size_t>(r) * rb, k);
    dequantize_row(g, w.bytes.data() + static_cast<size_t>(r) * rb, w.deq.data() + r * k, k);
  }
  w.view.dtype = t;
  w.view.shape = {n, k};
  w.view.data = w.bytes.data();
  return w;
}

class QMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(QMatmul, BackendsEqualScalarReference) {
  const DType t = GetParam();
  std::mt19937 rng(4321);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  const int64_t kb = dtype_block(t);
  const int64_t shapes[][3] = {{1, 1, kb}, {1, 7, 3 * kb}, {2, 33, 2 * kb}, {3, 64, kb}, {4, 19, 3 * kb},
                               {5, 129, kb}, {7, 5, 2 * kb}, {70, 31, kb}};
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    QWeights w = make_qweights(t, n, k, rng);
    std::vector<float> x(static_cast<size_t>(m * k));
    for (float& v : x) v = nd(rng);
    std::vector<float> ref(static_cast<size_t>(m * n)), got(static_cast<size_t>(m * n) + 3, -7.0f);
    kernels::matmul_with(kernels::Isa::kScalar, x.data(), m, k, w.view, ref.data(), n, pool);
    for (int isa = int(kernels::Isa::kAvx2); isa <= int(kernels::detected_isa()); ++isa) {
      kernels::matmul_with(kernels::Isa(isa), x.data(), m, k, w.view, got.data(), n, pool);
      for (size_t i = 0; i < ref.size(); ++i) {
        ASSERT_NEAR(got[i], ref[i], 2e-5f * std::sqrt(float(k)) * (1.0f + std::abs(ref[i])))
            << kernels::isa_name(kernels::Isa(isa)) << " " << m << "x" << n << "x" << k << " at " << i;
      }
      EXPECT_EQ(got[ref.size()], -7.0f) << "wrote past the output";
    }
  }
}

TEST_P(QMatmul, ScalarMatchesDequantizedProduct) {
  const DType t = GetParam();
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(1);
  const int64_t m = 3, n = 13, k = 2 * std::max<int64_t>(256, dtype_block(t));
  QWeights w = make_qweights(t, n, k, rng);
  std::vector<float> x(static_cast<size_t>(m * k)), y(static_cast<size_t>(m * n));
  for (float& v : x) v = nd(rng);
  kernels::matmul_with(kernels::Isa::kScalar, x.data(), m, k, w.view, y.data(), n, pool);
  double err = 0, norm = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += double(x[size_t(i * k + j)]) * w.deq[size_t(r * k + j)];
      err += (y[size_t(i * n + r)] - acc) * (y[size_t(i * n + r)] - acc);
      norm += acc * acc;
    }
  }
  // 8-bit activations: about 0.5% relative error, well under 2%.
  EXPECT_LT(std::sqrt(err / norm), 0.02) << dtype_name(t);
}

INSTANTIATE_TEST_SUITE_P(Types, QMatmul,
                         ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

class QuantizeActs : public ::testing::TestWithParam<int64_t> {};

TEST_P(QuantizeActs, SimdEqualsScalarBitForBit) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  const int64_t block = GetParam();
  const int64_t m = 5, k = 256 * 3;
  std::vector<float> x(static_cast<size_t>(m * k));
  for (float& v : x) v = nd(rng);
  for (int64_t j = 0; j < 32; ++j) x[size_t(k + j)] = 0.0f;  // an all-zero block
  x[7] = 0.5f;                                              // ties round to even
  kernels::QuantizedActs ref, got;
  ref.resize(m, k, block);
  got.resize(m, k, block);
  kernels::quantize_acts_scalar(x.data(), 0, m, ref);
  using Fn = kernels::QuantizeActsFn;
  const std::pair<kernels::Isa, Fn> fns[] = {{kernels::Isa::kAvx2, kernels::quantize_acts_avx2},
                                            {kernels::Isa::kAvx512, kernels::quantize_acts_avx512}};
  for (const auto& [isa, fn] : fns) {
    if (isa > kernels::detected_isa()) continue;
    fn(x.data(), 0, m, got);
    for (int64_t i = 0; i < m * k; ++i) ASSERT_EQ(got.q[size_t(i)], ref.q[size_t(i)]) << kernels::isa_name(isa) << " q " << i;
    for (int64_t i = 0; i < m * k / block; ++i) ASSERT_EQ(got.d[size_t(i)], ref.d[size_t(i)]) << "d " << i;
    for (int64_t i = 0; i < m * k / 16; ++i) ASSERT_EQ(got.s[size_t(i)], ref.s[size_t(i)]) << "s " << i;
  }
  for (int64_t j = 0; j < 32; ++j) EXPECT_EQ(ref.q[size_t(k + j)], 0);
}

INSTANTIATE_TEST_SUITE_P(Blocks, QuantizeActs, ::testing::Values(int64_t{32}, int64_t{256}));

double rel_rmse(const QWeights& w) {
  double e = 0, n = 0;
  for (size_t i = 0; i < w.f32.size(); ++i) {
    e += (w.deq[i] - w.f32[i]) * double(w.deq[i] - w.f32[i]);
    n += double(w.f32[i]) * w.f32[i];
  }
  return std::sqrt(e / n);
}

TEST(KQuantQuantizers, ErrorWithinFormatBounds) {
  std::mt19937 rng(11);
  const double q4_0 = rel_rmse(make_qweights(DType::kQ4_0, 16, 1024, rng));
  const double q4_k = rel_rmse(make_qweights(DType::kQ4_K, 16, 1024, rng));
  const double q6_k = rel_rmse(make_qweights(DType::kQ6_K, 16, 1024, rng));
  const double q8_0 = rel_rmse(make_qweights(DType::kQ8_0, 16, 1024, rng));
  // Typical figures for Gaussian weights with outliers: Q4_0 ~0.11, Q4_K ~0.09,
  // Q6_K ~0.025, Q8_0 ~0.006.
  EXPECT_LT(q4_k, q4_0) << "Q4_K must beat Q4_0 at a similar size";
  EXPECT_LT(q4_k, 0.11);
  EXPECT_LT(q6_k, 0.035);
  EXPECT_LT(q8_0, 0.01);
  std::cout << "rel rmse: q4_0 " << q4_0 << " q4_k " << q4_k << " q6_k " << q6_k << " q8_0 " << q8_0 << "\n";
}

TEST(KQuantQuantizers, ConstantAndZeroRows) {
  std::vector<float> zeros(256, 0.0f), ones(256, 1.0f), neg(256, -3.0f), out(256);
  std::vector<uint8_t> buf(256);
  for (GgmlType g : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (const auto* v : {&zeros, &ones, &neg}) {
      quantize_row(g, v->data(), buf.data(), 256);
      dequantize_row(g, buf.data(), out.data(), 256);
      for (int i = 0; i < 256; ++i) ASSERT_NEAR(out[size_t(i)], (*v)[size_t(i)], 0.02f * (1 + std::abs((*v)[size_t(i)])));
    }
  }
}

// Q8_0, Q4_0, Q5_0, Q4_K and Q6_K interleaved by 16 rows (kernels/cpu/repack.h): packing loses
// nothing, single rows read back as the GGUF rows do, and every backend's
// product equals the scalar reference's product with the GGUF rows (the AVX-512
// backend through its own kernels, the others through unpacking).
class Packed : public ::testing::TestWithParam<DType> {};

TEST_P(Packed, PackUnpackRoundTripsAndRowsReadBack) {
  const DType t = GetParam();
  const int64_t kb = dtype_block(t);
  std::mt19937 rng(99);
  for (const int64_t k : {kb, 3 * kb, 9 * kb}) {
    const int64_t n = 48;
    QWeights w = make_qweights(t, n, k, rng);
    ASSERT_TRUE(kernels::can_pack(t, n, k));
    EXPECT_FALSE(kernels::can_pack(t, n + 1, k));
    const DType pt = kernels::packed_type(t);
    EXPECT_EQ(dtype_unpacked(pt), t);
    const size_t bytes = w.view.nbytes();
    TensorView pv{pt, {n, k}, nullptr};
    std::vector<uint8_t> packed(pv.nbytes()), back(bytes);
    pv.data = packed.data();
    kernels::pack(t, w.bytes.data(), n, k, packed.data());
    for (int64_t g = 0; g < n / 16; ++g) {
      kernels::unpack_group(pt, packed.data(), k, g, back.data() + static_cast<size_t>(g) * bytes / (n / 16));
    }
    EXPECT_EQ(0, std::memcmp(back.data(), w.bytes.data(), bytes)) << "k=" << k;
    std::vector<float> row(static_cast<size_t>(k));
    for (const int64_t r : {int64_t{0}, int64_t{5}, int64_t{16}, int64_t{47}}) {
      kernels::matrix_row_to_f32(pv, r, row.data());
      for (int64_t j = 0; j < k; ++j) ASSERT_EQ(row[j], w.deq[r * k + j]) << "row " << r << " col " << j;
    }
  }
  EXPECT_FALSE(kernels::can_pack(DType::kBF16, 16, 256));
  EXPECT_THROW(kernels::packed_type(DType::kBF16), Error);
}

TEST_P(Packed, BackendsEqualScalarReferenceOnGgufRows) {
  const DType t = GetParam();
  const int64_t kb = dtype_block(t);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  const int64_t shapes[][3] = {{1, 16, kb},      {1, 64, 9 * kb}, {3, 32, 3 * kb}, {8, 16, 2 * kb}, {9, 48, 5 * kb},
                               {70, 32, 2 * kb}, {11, 96, 3 * kb}, {4, 16, kb},    {5, 32, kb}};
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    QWeights w = make_qweights(t, n, k, rng);
    TensorView pv{kernels::packed_type(t), {n, k}, nullptr};
    std::vector<uint8_t> packed(pv.nbytes());
    pv.data = packed.data();
    kernels::pack(t, w.bytes.data(), n, k, packed.data());
    std::vector<float> x(static_cast<size_t>(m * k));
    for (float& v : x) v = nd(rng);
    // Outputs into a wider matrix: the kernels must honour ldy.
    const int64_t ldy = n + 5;
    std::vector<float> ref(static_cast<size_t>(m * ldy), -7.0f), got(ref.size());
    kernels::matmul_with(kernels::Isa::kScalar, x.data(), m, k, w.view, ref.data(), ldy, pool);
    for (int isa = int(kernels::Isa::kScalar); isa <= int(kernels::detected_isa()); ++isa) {
      std::fill(got.begin(), got.end(), -7.0f);
      kernels::matmul_with(kernels::Isa(isa), x.data(), m, k, pv, got.data(), ldy, pool);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < ldy; ++j) {
          const float r = ref[i * ldy + j], g = got[i * ldy + j];
          if (j >= n) {
            ASSERT_EQ(g, -7.0f) << "wrote past row " << i;
            continue;
          }
          ASSERT_NEAR(g, r, 2e-5f * std::sqrt(float(k)) * (1.0f + std::abs(r)))
              << kernels::isa_name(kernels::Isa(isa)) << " " << m << "x" << n << "x" << k << " at " << i << "," << j;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Packed, ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace tandem
