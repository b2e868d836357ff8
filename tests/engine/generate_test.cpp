#include "engine/generate.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "test_util.h"

namespace tandem {
namespace {

std::unique_ptr<models::Model> demo() { return models::Model::load(testing::source_dir() / "models" / "demo"); }

TEST(Generate, StopsAtEos) {
  // "Parameters\n----------\n" greedily reaches <|endoftext|> (id 0) at step 39.
  auto m = demo();
  ThreadPool pool(2);
  std::vector<int32_t> prompt = {700, 199, 661, 199};
  engine::GenerateOptions go;
  go.max_new_tokens = 40;
  go.eos_ids = m->eos_token_ids();
  auto res = engine::generate(*m, prompt, go, pool);
  EXPECT_EQ(res.finish_reason, "stop");
  ASSERT_EQ(res.ids.size(), 39u);
  EXPECT_EQ(res.ids.back(), 0);
  go.ignore_eos = true;
  res = engine::generate(*m, prompt, go, pool);
  EXPECT_EQ(res.finish_reason, "length");
  EXPECT_EQ(res.ids.size(), 40u);
}

TEST(Generate, CallbackCanCancelAndZeroTokensIsFine) {
  auto m = demo();
  ThreadPool pool(1);
  std::vector<int32_t> prompt = {1104, 269};
  engine::GenerateOptions go;
  go.max_new_tokens = 10;
  int seen = 0;
  auto res = engine::generate(*m, prompt, go, pool, [&](int32_t) { return ++seen < 3; });
  EXPECT_EQ(res.finish_reason, "cancelled");
  EXPECT_EQ(res.ids.size(), 3u);
  go.max_new_tokens = 0;
  EXPECT_TRUE(engine::generate(*m, prompt, go, pool).ids.empty());
}

TEST(Generate, ChunkedPrefillGivesTheSameTokens) {
  auto m = demo();
  ThreadPool pool(2);
  std::vector<int32_t> prompt = {1178, 26, 277, 464, 221};
  engine::GenerateOptions go;
  go.max_new_tokens = 12;
  auto a = engine::generate(*m, prompt, go, pool);
  go.prefill_chunk = 2;
  auto b = engine::generate(*m, prompt, go, pool);
  EXPECT_EQ(a.ids, b.ids);
}

TEST(Generate, BadPromptsAreErrors) {
  auto m = demo();
  ThreadPool pool(1);
  engine::GenerateOptions go;
  EXPECT_THROW(engine::generate(*m, std::vector<int32_t>{}, go, pool), Error);
  EXPECT_THROW(engine::generate(*m, std::vector<int32_t>{8192}, go, pool), Error);
  std::vector<int32_t> too_long(2000, 5);
  EXPECT_THROW(engine::generate(*m, too_long, go, pool), Error);
}

TEST(KvCache, GrowsKeepsContentsAndLimits) {
  models::KvCache c(2, 4, 100);
  c.reserve(3);
  c.key_row(1, 2)[3] = 7.0f;
  c.set_length(3);
  c.reserve(90);  // grows by whole blocks; earlier rows stay where they are
  EXPECT_EQ(c.key_row(1, 2)[3], 7.0f);
  EXPECT_EQ(c.length(), 3);
  EXPECT_THROW(c.reserve(101), Error);
  c.truncate(1);
  EXPECT_EQ(c.length(), 1);
  EXPECT_THROW(c.truncate(5), Error);
}

}  // namespace
}  // namespace tandem
