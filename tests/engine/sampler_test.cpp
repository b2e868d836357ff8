#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <map>

#include "base/error.h"

namespace tandem {
namespace {

using engine::Sampler;
using engine::SamplingParams;

TEST(Sampler, GreedyPicksFirstMaximum) {
  Sampler s(SamplingParams{});
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.sample(l, {}), 1);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {4.0f, 3.0f, -1.0f};
  std::vector<int32_t> hist = {0, 0, 2};
  EXPECT_EQ(s.sample(l, hist), 1);  // 4/2 = 2 < 3
  EXPECT_FLOAT_EQ(l[0], 2.0f);
  EXPECT_FLOAT_EQ(l[2], -2.0f);
}

std::map<int32_t, int> histogram(const SamplingParams& p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) {
    auto l = logits;
    h[s.sample(l, {})]++;
  }
  return h;
}

TEST(Sampler, TopKKeepsOnlyKBest) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  auto h = histogram(p, {1.0f, 0.0f, 2.0f, 1.9f}, 2000);
  EXPECT_EQ(h.count(0) + h.count(1), 0u);
  EXPECT_GT(h[2], 0);
  EXPECT_GT(h[3], 0);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.5f;
  // probabilities ~ 0.64, 0.24, 0.09, 0.03: the first alone reaches 0.5
  auto h = histogram(p, {3.0f, 2.0f, 1.0f, 0.0f}, 500);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 0);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.2f;
  auto h = histogram(p, {3.0f, 2.5f, 0.0f, -1.0f}, 2000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  EXPECT_GT(h[1], 0);
}

TEST(Sampler, SamplingFollowsTheDistributionAndSeedRepeats) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  auto a = histogram(p, {0.0f, std::log(3.0f)}, 8000);
  EXPECT_NEAR(a[1] / 8000.0, 0.75, 0.03);
  EXPECT_EQ(a, histogram(p, {0.0f, std::log(3.0f)}, 8000));
}

TEST(Sampler, LowTemperatureApproachesGreedy) {
  SamplingParams p;
  p.temperature = 0.01f;
  auto h = histogram(p, {1.0f, 1.5f, 0.2f}, 200);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 1);
}

TEST(Sampler, InvalidParametersAreRejected) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_THROW(engine::validate(p), Error);
  p = {};
  p.top_p = 0;
  EXPECT_THROW(engine::validate(p), Error);
  p = {};
  p.top_k = -2;
  EXPECT_THROW(engine::validate(p), Error);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_THROW(engine::validate(p), Error);
}

}  // namespace
}  // namespace tandem
