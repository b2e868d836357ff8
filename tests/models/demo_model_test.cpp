// The embedded demo model (models/demo, a copy of ../shared/models/docstring-llama-9m)
// reproduces the greedy continuations and logits transformers computed for it.
#include <gtest/gtest.h>

#include "base/thread_pool.h"
#include "engine/generate.h"
#include "kernels/cpu/isa.h"
#include "models/logits_util.h"
#include "models/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

std::filesystem::path demo_dir() { return testing::source_dir() / "models" / "demo"; }

TEST(DemoModel, IsTheSharedModel) {
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "reference.json"}) {
    EXPECT_EQ(testing::read_file(demo_dir() / f),
              testing::read_file(testing::shared_dir() / "models/docstring-llama-9m" / f))
        << f;
  }
}

TEST(DemoModel, GreedyContinuationsMatchReferenceExactly) {
  auto model = models::Model::load(demo_dir());
  auto tok = tokenizer::Tokenizer::load(demo_dir());
  auto ref = testing::read_json(demo_dir() / "reference.json");
  ThreadPool pool(2);
  ASSERT_EQ(ref["greedy"].size(), 5u);
  for (const auto& g : ref["greedy"]) {
    auto prompt = tok->encode(g["prompt"].get<std::string>(), true);
    EXPECT_EQ(prompt, g["prompt_ids"].get<std::vector<int32_t>>()) << g["prompt"];
    auto want = g["ids"].get<std::vector<int32_t>>();
    engine::GenerateOptions go;
    go.max_new_tokens = static_cast<int64_t>(want.size());
    go.ignore_eos = true;  // the reference generated straight through <|endoftext|>
    auto res = engine::generate(*model, prompt, go, pool);
    EXPECT_EQ(res.ids, want) << g["prompt"];
    EXPECT_EQ(tok->decode(res.ids), g["text"].get<std::string>());
  }
}

TEST(DemoModel, LogitsMatchReference) {
  auto model = models::Model::load(demo_dir());
  auto tok = tokenizer::Tokenizer::load(demo_dir());
  auto ref = testing::read_json(demo_dir() / "reference.json");
  auto ids = tok->encode(ref["logits_0_prompt"].get<std::string>(), true);
  auto want = testing::read_f32(demo_dir() / "reference.safetensors", "logits_0");
  ASSERT_EQ(want.shape[0], static_cast<int64_t>(ids.size()));
  ThreadPool pool(2);
  const size_t V = static_cast<size_t>(model->vocab_size());
  const std::vector<float> got = testing::logits_all(*model, ids, pool);
  for (size_t r = 0; r < ids.size(); ++r) {
    EXPECT_LE(testing::rel_l2(got.data() + r * V, want.data.data() + r * V, V), 1e-4) << "position " << r;
  }
}

// --bf16-activations (LoadOptions::bf16_activations) on a CPU with
// AVX512_BF16: the activations meet the bf16 weights rounded once, as
// transformers computes in bfloat16. The logits stay close to the float32
// reference, but measurably apart (or the option did nothing).
TEST(DemoModel, Bf16ActivationsStayCloseToReference) {
  if (kernels::active_isa() != kernels::Isa::kAvx512 || !kernels::cpu_has_avx512_bf16()) {
    GTEST_SKIP() << "no AVX512_BF16 kernel at the active ISA level: the option changes nothing here";
  }
  models::LoadOptions lo;
  lo.bf16_activations = true;
  auto model = models::Model::load(demo_dir(), lo);
  auto tok = tokenizer::Tokenizer::load(demo_dir());
  auto ref = testing::read_json(demo_dir() / "reference.json");
  auto ids = tok->encode(ref["logits_0_prompt"].get<std::string>(), true);
  auto want = testing::read_f32(demo_dir() / "reference.safetensors", "logits_0");
  ThreadPool pool(2);
  const size_t V = static_cast<size_t>(model->vocab_size());
  const std::vector<float> got = testing::logits_all(*model, ids, pool);
  double worst = 0;
  for (size_t r = 0; r < ids.size(); ++r) {
    const double e = testing::rel_l2(got.data() + r * V, want.data.data() + r * V, V);
    worst = std::max(worst, e);
    EXPECT_LE(e, 2e-2) << "position " << r;
  }
  std::printf("bf16 activations: worst logits rel. L2 %.3g\n", worst);
  EXPECT_GT(worst, 1e-4) << "the activations were not rounded";
}

}  // namespace
}  // namespace tandem
