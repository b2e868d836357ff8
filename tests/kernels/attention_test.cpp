// The grouped-query attention kernels (kernels/cpu/attention.h): the AVX2 one
// against the scalar reference, on paged rows at several group sizes, head
// dims (multiples of 8 and not), lengths (vector tails) and windows.
#include "kernels/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace tandem {
namespace {

using kernels::AttendGroupArgs;
using kernels::Isa;

// Outputs of the scalar reference and of the AVX2 kernel for the same
// arguments (a.q, a.k, a.v, the window and scale set), each with its own
// scratch.
struct BothOutputs {
  std::vector<float> scalar, avx2;
};
BothOutputs run_scalar_and_avx2(AttendGroupArgs a) {
  const int64_t len = a.last - a.first + 1;
  const size_t out = static_cast<size_t>(a.group * a.head_dim);
  std::vector<float> scores(static_cast<size_t>(kernels::attend_scores_size(a.group, len)));
  std::vector<const float*> rows(static_cast<size_t>(2 * len));
  BothOutputs o{std::vector<float>(out), std::vector<float>(out)};
  a.rows = rows.data();
  a.scores = scores.data();
  a.out = o.scalar.data();
  kernels::attend_group_scalar(a);
  std::fill(scores.begin(), scores.end(), 0.0f);
  a.out = o.avx2.data();
  kernels::attend_group_with(Isa::kAvx2, a);
  return o;
}

TEST(AttendGroup, Avx2EqualsScalarReference) {
  if (kernels::detected_isa() < Isa::kAvx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  int cases = 0;
  for (int64_t group : {1, 2, 3, 4, 7, 8, 9}) {
    for (int64_t hd : {8, 12, 24, 64, 80, 128}) {
      for (int64_t n : {1, 5, 17, 130}) {
        for (float softcap : {0.0f, 3.0f}) {
          // Keys/values of 2 heads per row in blocks of 16 rows, the blocks in
          // reverse memory order; the group attends to head 1.
          const int64_t kv_heads = 2, stride = kv_heads * hd + 3, bs = 16, first = n > 5 ? 3 : 0;
          const int64_t nblocks = (first + n + bs - 1) / bs;
          std::vector<float> kmem(static_cast<size_t>(nblocks * bs * stride)), vmem(kmem.size());
          for (float& x : kmem) x = nd(rng);
          for (float& x : vmem) x = nd(rng);
          std::vector<const float*> kb, vb;
          for (int64_t b = 0; b < nblocks; ++b) {
            kb.push_back(kmem.data() + (nblocks - 1 - b) * bs * stride);
            vb.push_back(vmem.data() + (nblocks - 1 - b) * bs * stride);
          }
          std::vector<float> q(static_cast<size_t>(group * hd));
          for (float& x : q) x = nd(rng);
          AttendGroupArgs a;
          a.q = q.data();
          a.group = group;
          a.head_dim = hd;
          a.k = kernels::KvRows{kb.data(), bs, stride};
          a.v = kernels::KvRows{vb.data(), bs, stride};
          a.kv_offset = hd;
          a.first = first;
          a.last = first + n - 1;
          a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
          a.softcap = softcap;
          const BothOutputs o = run_scalar_and_avx2(a);
          const std::vector<float>&o1 = o.scalar, &o2 = o.avx2;
          for (size_t i = 0; i < o1.size(); ++i) {
            ASSERT_NEAR(o2[i], o1[i], 2e-5f * (1.0f + std::fabs(o1[i])))
                << "group " << group << " head_dim " << hd << " n " << n << " softcap " << softcap << " at " << i;
          }
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 7 * 6 * 4 * 2);
}

// Keys and values need not share a block size: keys paged by 4, values in one block.
TEST(AttendGroup, KeysAndValuesWithDifferentBlockSizes) {
  if (kernels::detected_isa() < Isa::kAvx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  const int64_t group = 4, hd = 16, n = 23;
  std::vector<float> kmem(static_cast<size_t>(n * hd)), vmem(kmem.size()), q(static_cast<size_t>(group * hd));
  for (auto* vec : {&kmem, &vmem, &q}) for (float& x : *vec) x = nd(rng);
  std::vector<const float*> kb;
  for (int64_t b = 0; b * 4 < n; ++b) kb.push_back(kmem.data() + b * 4 * hd);
  const float* vb[1] = {vmem.data()};
  AttendGroupArgs a;
  a.q = q.data();
  a.group = group;
  a.head_dim = hd;
  a.k = kernels::KvRows{kb.data(), 4, hd};
  a.v = kernels::KvRows{vb, n, hd};
  a.first = 2;
  a.last = n - 1;
  const BothOutputs o = run_scalar_and_avx2(a);
  ASSERT_EQ(o.avx2.size(), q.size());
  for (size_t i = 0; i < o.scalar.size(); ++i) {
    EXPECT_NEAR(o.avx2[i], o.scalar[i], 2e-5f * (1.0f + std::fabs(o.scalar[i]))) << i;
  }
}

// A one-position context weighs its single value row by exactly 1.
TEST(AttendGroup, SinglePositionReturnsTheValueRow) {
  std::vector<float> k(16, 0.5f), v(16), q(16, 1.0f), s(static_cast<size_t>(kernels::attend_scores_size(2, 1))),
      out(16);
  std::vector<const float*> rows(2);
  for (int i = 0; i < 16; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i) - 3.5f;
  const float* kb[1] = {k.data()};
  const float* vb[1] = {v.data()};
  for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
    if (isa > kernels::detected_isa()) continue;
    AttendGroupArgs a;
    a.q = q.data();
    a.group = 2;
    a.head_dim = 8;
    a.k = kernels::KvRows{kb, 1, 16};
    a.v = kernels::KvRows{vb, 1, 16};
    a.kv_offset = 8;
    a.first = a.last = 0;
    a.scores = s.data();
    a.rows = rows.data();
    a.out = out.data();
    kernels::attend_group_with(isa, a);
    for (int g = 0; g < 2; ++g) {
      for (int i = 0; i < 8; ++i) EXPECT_EQ(out[static_cast<size_t>(g * 8 + i)], v[static_cast<size_t>(8 + i)]);
    }
  }
}

}  // namespace
}  // namespace tandem
