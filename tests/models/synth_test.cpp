// Synthetic checkpoints: each preset has the real model's shapes and parameter count, and
// the smallest one loads and runs with finite, O(1) logits.
#include "models/synth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "base/error.h"
#include "base/thread_pool.h"
#include "models/model.h"
#include "test_util.h"

namespace tandem {
namespace {

TEST(Synth, PresetsHaveThePublishedParameterCounts) {
  // Published totals (tied embeddings counted once): Llama-3.2-1B 1.236 B, Qwen2.5-0.5B
  // 494 M, Qwen3-0.6B 596 M, SmolLM2-135M 134.5 M.
  const std::map<std::string, int64_t> expected = {{"llama-3.2-1b", 1235814400},
                                                    {"qwen2.5-0.5b", 494032768},
                                                    {"qwen3-0.6b", 596049920},
                                                    {"smollm2-135m", 134515008}};
  ASSERT_EQ(models::synth_presets().size(), expected.size());
  for (const auto& p : models::synth_presets()) {
    SCOPED_TRACE(p.name);
    EXPECT_EQ(models::synth_param_count(p.config), expected.at(p.name));
    EXPECT_EQ(p.expected_params, expected.at(p.name));
  }
  // A few shapes that distinguish the families.
  auto find = [](const std::vector<models::SynthTensor>& ts, const std::string& n) {
    for (const auto& t : ts)
      if (t.name == n) return t.shape;
    return std::vector<int64_t>{};
  };
  const auto llama = models::synth_tensors(models::synth_preset("llama-3.2-1b").config);
  EXPECT_EQ(find(llama, "model.embed_tokens.weight"), (std::vector<int64_t>{128256, 2048}));
  EXPECT_EQ(find(llama, "model.layers.15.self_attn.k_proj.weight"), (std::vector<int64_t>{512, 2048}));
  EXPECT_TRUE(find(llama, "lm_head.weight").empty());
  const auto qwen2 = models::synth_tensors(models::synth_preset("qwen2.5-0.5b").config);
  EXPECT_EQ(find(qwen2, "model.layers.0.self_attn.q_proj.bias"), (std::vector<int64_t>{896}));
  const auto qwen3 = models::synth_tensors(models::synth_preset("qwen3-0.6b").config);
  EXPECT_EQ(find(qwen3, "model.layers.27.self_attn.q_proj.weight"), (std::vector<int64_t>{2048, 1024}));
  EXPECT_EQ(find(qwen3, "model.layers.0.self_attn.k_norm.weight"), (std::vector<int64_t>{128}));
  EXPECT_THROW(models::synth_preset("gpt-5"), Error);
}

TEST(Synth, SmallestPresetLoadsAndRuns) {
  testing::TempDir tmp;
  const auto dir = tmp / "smollm2";
  models::SynthOptions o;
  o.seed = 3;
  o.threads = 2;
  const auto r = models::write_synth_model(models::synth_preset("smollm2-135m"), dir, o);
  EXPECT_EQ(r.params, 134515008);
  EXPECT_EQ(r.bytes, std::filesystem::file_size(dir / "model.safetensors"));
  const auto cfg = testing::read_json(dir / "config.json");
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_EQ(cfg["num_hidden_layers"], 30);

  auto m = models::Model::load(dir);
  EXPECT_EQ(m->info().params, 134515008);
  ThreadPool pool(2);
  const std::vector<int32_t> ids = {1, 500, 9000, 49151, 7, 7, 7, 123};
  std::vector<float> logits(ids.size() * static_cast<size_t>(m->vocab_size()));
  auto cache = m->new_cache(16);
  models::Workspace ws;
  models::SeqInput in{ids, &cache, true, logits.data()};
  m->forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
  double sum2 = 0;
  for (float x : logits) {
    ASSERT_TRUE(std::isfinite(x));
    sum2 += static_cast<double>(x) * x;
  }
  const double rms = std::sqrt(sum2 / static_cast<double>(logits.size()));
  EXPECT_GT(rms, 0.2);  // O(1): neither collapsed nor exploding
  EXPECT_LT(rms, 5.0);

}

TEST(Synth, SameSeedSameWeightsWhateverTheThreads) {
  models::SynthPreset p;
  p.name = "tiny";
  p.config = {{"model_type", "qwen2"}, {"hidden_size", 64}, {"intermediate_size", 96}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 3000},
              {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}, {"max_position_embeddings", 128}};
  p.generation_config = nlohmann::ordered_json::object();
  testing::TempDir tmp;
  models::SynthOptions o;
  o.seed = 5;
  o.threads = 2;
  o.dtype = DType::kF32;
  models::write_synth_model(p, tmp / "a", o);
  o.threads = 1;
  models::write_synth_model(p, tmp / "b", o);
  o.seed = 6;
  models::write_synth_model(p, tmp / "c", o);
  const auto a = testing::read_file(tmp / "a" / "model.safetensors");
  EXPECT_EQ(a, testing::read_file(tmp / "b" / "model.safetensors"));
  EXPECT_NE(a, testing::read_file(tmp / "c" / "model.safetensors"));
  // Untied: the embedding is N(0, 1), the head N(0, 1/H).
  auto emb = testing::read_f32(tmp / "a" / "model.safetensors", "model.embed_tokens.weight");
  auto head = testing::read_f32(tmp / "a" / "model.safetensors", "lm_head.weight");
  auto var = [](const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += static_cast<double>(x) * x;
    return s / static_cast<double>(v.size());
  };
  EXPECT_NEAR(var(emb.data), 1.0, 0.02);
  EXPECT_NEAR(var(head.data), 1.0 / 64, 0.02 / 64);
  auto m = models::Model::load(tmp / "a");  // qwen2 biases present, loads
  EXPECT_EQ(m->info().params, models::synth_param_count(p.config));
}

}  // namespace
}  // namespace tandem
