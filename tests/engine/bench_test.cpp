// tandem bench's measurement loop (engine/bench.h) on the demo model: the
// decode-at-depth option and the per-operation step profile.
#include "engine/bench.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "models/model.h"
#include "test_util.h"

namespace tandem {
namespace {

std::filesystem::path demo_dir() { return testing::source_dir() / "models" / "demo"; }

engine::BenchOptions small_run(int64_t depth) {
  engine::BenchOptions bo;
  bo.prompt_len = 8;
  bo.gen = 6;
  bo.reps = 1;
  bo.depth = depth;
  return bo;
}

TEST(Bench, ProfileAccountsForEveryMatrixOncePerDecodedToken) {
  auto model = models::Model::load(demo_dir());
  ThreadPool pool(2);
  engine::BenchOptions bo = small_run(20);
  bo.profile = true;
  const engine::BenchResult r = engine::run_bench(*model, bo, pool);
  EXPECT_EQ(r.depth, 20);
  EXPECT_GT(r.decode_tok_s, 0.0);
  const models::StepProfile& p = r.profile;
  EXPECT_EQ(p.steps, bo.gen);
  uint64_t bytes = 0;
  double seconds = 0;
  for (int op = 0; op < models::StepProfile::kCount; ++op) {
    bytes += p.bytes[op];
    seconds += p.seconds[op];
    EXPECT_GE(p.seconds[op], 0.0) << models::StepProfile::name(op);
  }
  // Each decoded token streams every matrix once: the layers' and the head (the
  // demo model ties it to the embedding, which info() counts once).
  EXPECT_EQ(bytes, static_cast<uint64_t>(bo.gen) * model->info().matrix_bytes);
  for (auto op : {models::StepProfile::kQkv, models::StepProfile::kOut, models::StepProfile::kGateUp,
                  models::StepProfile::kDown, models::StepProfile::kHead, models::StepProfile::kAttention}) {
    EXPECT_GT(p.seconds[op], 0.0) << models::StepProfile::name(op);
  }
  EXPECT_GT(seconds, 0.0);
}

TEST(Bench, DepthBeyondTheContextIsAClearError) {
  auto model = models::Model::load(demo_dir());
  ThreadPool pool(1);
  const engine::BenchOptions bo = small_run(model->config().max_position_embeddings);
  try {
    engine::run_bench(*model, bo, pool);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--depth"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tandem
