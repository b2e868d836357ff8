#include "models/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tandem {
namespace {

formats::RopeParams params(const std::string& type, double theta = 10000.0, double factor = 1.0) {
  formats::RopeParams p;
  p.type = type;
  p.theta = theta;
  p.factor = factor;
  return p;
}

TEST(Rope, DefaultFrequencies) {
  models::Rope r(params("default"), 64, 4096);
  std::vector<float> f;
  float s = 0;
  r.frequencies(10, f, s);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_EQ(s, 1.0f);
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], 1.0 / std::pow(10000.0, 2.0 * i / 64), 1e-7 * (1 + f[i]));
}

TEST(Rope, LinearDividesByFactor) {
  models::Rope a(params("default"), 32, 4096), b(params("linear", 10000.0, 4.0), 32, 4096);
  std::vector<float> fa, fb;
  float s;
  a.frequencies(1, fa, s);
  b.frequencies(1, fb, s);
  for (size_t i = 0; i < fa.size(); ++i) EXPECT_NEAR(fb[i], fa[i] / 4.0f, 1e-9);
}

TEST(Rope, Llama3KeepsHighAndScalesLowFrequencies) {
  auto p = params("llama3", 500000.0, 8.0);
  p.original_max_position_embeddings = 64;
  models::Rope a(params("default", 500000.0), 32, 4096), b(p, 32, 4096);
  std::vector<float> fa, fb;
  float s;
  a.frequencies(1, fa, s);
  b.frequencies(1, fb, s);
  EXPECT_EQ(fb[0], fa[0]);  // wavelength 2π < 64/4: unchanged
  EXPECT_NEAR(fb.back(), fa.back() / 8.0f, 1e-12);  // long wavelength: divided
}

TEST(Rope, YarnAttentionFactor) {
  auto p = params("yarn", 10000.0, 4.0);
  models::Rope r(p, 64, 4096);
  std::vector<float> f;
  float s;
  r.frequencies(1, f, s);
  EXPECT_NEAR(s, 0.1 * std::log(4.0) + 1.0, 1e-6);
  models::Rope d(params("default"), 64, 4096);
  std::vector<float> fd;
  d.frequencies(1, fd, s);
  EXPECT_EQ(f[0], fd[0]);  // highest frequency extrapolated
  EXPECT_NEAR(f.back(), fd.back() / 4.0f, 1e-12);  // lowest interpolated
}

TEST(Rope, DynamicChangesOnlyPastTheOriginalContext) {
  auto p = params("dynamic", 10000.0, 2.0);
  models::Rope r(p, 32, 128);
  std::vector<float> short_f, long_f, base;
  float s;
  r.frequencies(100, short_f, s);
  r.frequencies(300, long_f, s);
  models::Rope(params("default"), 32, 128).frequencies(1, base, s);
  EXPECT_EQ(short_f, base);
  EXPECT_LT(long_f.back(), base.back());
}

TEST(Rope, PartialRotary) {
  auto p = params("default");
  p.partial_rotary_factor = 0.5;
  models::Rope r(p, 64, 4096);
  EXPECT_EQ(r.rot_dim(), 32);
}

}  // namespace
}  // namespace tandem
