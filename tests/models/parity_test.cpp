// Parity against Hugging Face transformers on every ../shared/fixtures/hf model:
// logits at every position within relative L2 1e-4 of the float64 reference,
// and greedy ids equal up to the first near-tie.
#include <gtest/gtest.h>

#include <algorithm>

#include "base/thread_pool.h"
#include "engine/generate.h"
#include "models/model.h"
#include "models/logits_util.h"
#include "test_util.h"

namespace tandem {
namespace {

using testing::read_f32;
using testing::read_json;
using testing::rel_l2;
using testing::shared_dir;

// The issue asks for 1e-4; we measure <= 4e-7 on every fixture, so guard at 1e-5 to
// catch numerics regressions (e.g. a missed transformers buffer rounding, ~3e-5).
constexpr double kLogitTolerance = 1e-5;
constexpr double kTieMargin = 1e-3;

const std::vector<std::string> kFixtures = {"llama", "llama_tied", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"};

std::filesystem::path fixture(const std::string& name) { return shared_dir() / "fixtures" / "hf" / name; }

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

// Full-sequence logits of `prompt` in one forward call.
void expect_rows_close(const std::vector<float>& got, const testing::F32Tensor& ref, const std::string& what) {
  ASSERT_EQ(ref.shape.size(), 2u);
  const size_t rows = static_cast<size_t>(ref.shape[0]), vocab = static_cast<size_t>(ref.shape[1]);
  ASSERT_EQ(got.size(), rows * vocab) << what;
  for (size_t r = 0; r < rows; ++r) {
    double e = rel_l2(got.data() + r * vocab, ref.data.data() + r * vocab, vocab);
    EXPECT_LE(e, kLogitTolerance) << what << " position " << r;
  }
}

TEST(Parity, EveryFixtureFolderIsCovered) {
  for (const auto& entry : std::filesystem::directory_iterator(shared_dir() / "fixtures" / "hf")) {
    if (!entry.is_directory()) continue;
    std::string name = entry.path().filename().string();
    bool covered = std::find(kFixtures.begin(), kFixtures.end(), name) != kFixtures.end();
    EXPECT_TRUE(covered) << "fixture folder " << name << " has no parity test";
  }
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, LogitsMatchReferenceAtEveryPosition) {
  const auto dir = fixture(GetParam());
  auto model = models::Model::load(dir);
  auto ref = read_json(dir / "reference.json");
  ThreadPool pool(2);
  for (size_t i = 0; i < ref["prompts"].size(); ++i) {
    auto prompt = ids_of(ref["prompts"][i]);
    auto want = read_f32(dir / "reference.safetensors", "logits_" + std::to_string(i));
    expect_rows_close(testing::logits_all(*model, prompt, pool), want, GetParam() + " prompt " + std::to_string(i));
  }
}

TEST_P(HfParity, IncrementalDecodeMatchesReference) {
  // The longest prompt fed in uneven chunks through the KV cache (1, then 7, then 1 at a time...).
  const auto dir = fixture(GetParam());
  auto model = models::Model::load(dir);
  auto ref = read_json(dir / "reference.json");
  const size_t last = ref["prompts"].size() - 1;
  auto prompt = ids_of(ref["prompts"][last]);
  auto want = read_f32(dir / "reference.safetensors", "logits_" + std::to_string(last));
  ThreadPool pool(2);
  const size_t V = static_cast<size_t>(model->vocab_size());
  std::vector<float> got(prompt.size() * V);
  auto cache = model->new_cache();
  models::Workspace ws;
  size_t pos = 0, step = 1;
  while (pos < prompt.size()) {
    size_t n = std::min(step, prompt.size() - pos);
    models::SeqInput in{std::span<const int32_t>(prompt).subspan(pos, n), &cache, true, got.data() + pos * V};
    model->forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
    pos += n;
    step = step == 1 ? 7 : 1;
  }
  EXPECT_EQ(cache.length(), static_cast<int64_t>(prompt.size()));
  expect_rows_close(got, want, GetParam() + " incremental");
}

TEST_P(HfParity, BatchedSequencesMatchSeparateRuns) {
  // All prompts in one forward call: each must equal its own reference.
  const auto dir = fixture(GetParam());
  auto model = models::Model::load(dir);
  auto ref = read_json(dir / "reference.json");
  ThreadPool pool(2);
  const size_t V = static_cast<size_t>(model->vocab_size());
  const size_t n = ref["prompts"].size();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<float>> outs(n);
  std::vector<models::KvCache> caches;
  std::vector<models::SeqInput> batch;
  for (size_t i = 0; i < n; ++i) {
    prompts.push_back(ids_of(ref["prompts"][i]));
    caches.push_back(model->new_cache());
  }
  for (size_t i = 0; i < n; ++i) {
    outs[i].resize(prompts[i].size() * V);
    batch.push_back({prompts[i], &caches[i], true, outs[i].data()});
  }
  models::Workspace ws;
  model->forward(batch, ws, pool);
  for (size_t i = 0; i < n; ++i) {
    auto want = read_f32(dir / "reference.safetensors", "logits_" + std::to_string(i));
    expect_rows_close(outs[i], want, GetParam() + " batched prompt " + std::to_string(i));
  }
}

TEST_P(HfParity, GreedyIdsMatchUpToFirstNearTie) {
  const auto dir = fixture(GetParam());
  auto model = models::Model::load(dir);
  auto ref = read_json(dir / "reference.json");
  auto prompt = ids_of(ref["prompts"][ref["greedy_prompt"].get<size_t>()]);
  auto want = ids_of(ref["greedy_ids"]);
  auto margins = ref["greedy_top2_margin"].get<std::vector<double>>();
  ThreadPool pool(2);
  engine::GenerateOptions go;
  go.max_new_tokens = static_cast<int64_t>(want.size());
  go.ignore_eos = true;
  auto res = engine::generate(*model, prompt, go, pool);
  ASSERT_EQ(res.ids.size(), want.size());
  size_t compared = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(res.ids[i], want[i]) << GetParam() << " step " << i;
    ++compared;
    if (margins[i] < kTieMargin || res.ids[i] != want[i]) break;
  }
  EXPECT_GT(compared, 0u);
}

TEST_P(HfParity, F32WeightsGiveTheSameLogits) {
  const auto dir = fixture(GetParam());
  models::LoadOptions lo;
  lo.convert_to_f32 = true;
  auto model = models::Model::load(dir, lo);
  auto ref = read_json(dir / "reference.json");
  ThreadPool pool(1);
  auto prompt = ids_of(ref["prompts"][1]);
  auto want = read_f32(dir / "reference.safetensors", "logits_1");
  expect_rows_close(testing::logits_all(*model, prompt, pool), want, GetParam() + " f32");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity, ::testing::ValuesIn(kFixtures),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tandem
