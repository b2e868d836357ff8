// GGUF models against llama.cpp's own logits (../shared/fixtures/gguf): every
// file of tiny-llama and tiny-qwen2, every position of both prompts. llama.cpp
// quantizes activations to 8 bits inside quantized dot products and keeps an
// f16 KV cache, so we cannot match exactly; but a correct float engine lands far
// below the file's own quantization error (summary.json), while a wrong
// dequantization lands at about that error. The bounds sit between the two.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/error.h"
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

const std::vector<std::string> kTypes = {"F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q2_K", "Q4_K_M", "Q5_K_M", "Q6_K"};
const std::vector<std::string> kModels = {"tiny-llama", "tiny-qwen2"};

// F16: only llama.cpp's f16 conversions (activations, KV cache) and summation order differ.
constexpr double kF16Tolerance = 2e-3;
// Quantized files: llama.cpp also rounds activations to 8 bits (q8_0 / q8_K) inside
// every quantized dot product. That alone puts it a model-dependent, weight-type
// independent distance from an exact float engine (measured overall rel-L2: llama
// 0.011-0.017, qwen2 0.019-0.029 for every type from Q8_0 to Q2_K). A wrong
// dequantization adds an error of the file's own quantization error (0.016 to 0.7).
double activation_floor(const std::string& model) { return model == "tiny-llama" ? 0.02 : 0.035; }
// Per position the spread is wider than over all logits.
constexpr double kPositionSlack = 1.5;
// Every quantized file must land well inside its own quantization error...
constexpr double kMaxFractionOfQuantError = 0.8;
// ...and, where that error towers over the floor (Q5_0 and below), far inside it.
constexpr double kFractionOfLargeQuantError = 0.25;
// Greedy ids are compared where the reference top-2 margin is at least this.
constexpr double kTieMargin = 0.1;

std::filesystem::path gguf_dir() { return shared_dir() / "fixtures" / "gguf"; }
std::filesystem::path file_of(const std::string& model, const std::string& type) {
  return gguf_dir() / model / (model + "-" + type + ".gguf");
}
std::filesystem::path ref_base(const std::string& model, const std::string& type) {
  return gguf_dir() / model / (model + "-" + type);
}

struct Case {
  std::string model, type;
};
std::vector<Case> all_cases() {
  std::vector<Case> c;
  for (const auto& m : kModels)
    for (const auto& t : kTypes) c.push_back({m, t});
  return c;
}

class GgufParity : public ::testing::TestWithParam<Case> {};

TEST_P(GgufParity, LogitsCloseToLlamaCppAtEveryPosition) {
  const auto [model_name, type] = GetParam();
  auto model = models::Model::load(file_of(model_name, type));
  auto ref = read_json(ref_base(model_name, type).string() + ".reference.json");
  auto summary = read_json(gguf_dir() / "summary.json");
  const double quant_err = summary["models"][model_name]["files"][type]["rel_l2_vs_f16"].get<double>();
  const double floor = activation_floor(model_name);
  const double overall_bound = type == "F16" ? kF16Tolerance : floor;
  const double position_bound = type == "F16" ? kF16Tolerance : kPositionSlack * floor;
  ThreadPool pool(2);
  const size_t V = static_cast<size_t>(model->vocab_size());
  double num = 0, den = 0, worst = 0;
  for (size_t i = 0; i < ref["prompts"].size(); ++i) {
    auto prompt = ref["prompts"][i].get<std::vector<int32_t>>();
    auto want = read_f32(ref_base(model_name, type).string() + ".reference.safetensors", "logits_" + std::to_string(i));
    auto got = testing::logits_all(*model, prompt, pool);
    ASSERT_EQ(got.size(), want.data.size());
    for (size_t r = 0; r < prompt.size(); ++r) {
      const double e = rel_l2(got.data() + r * V, want.data.data() + r * V, V);
      worst = std::max(worst, e);
      EXPECT_LE(e, position_bound) << model_name << "-" << type << " prompt " << i << " position " << r;
    }
    for (size_t k = 0; k < got.size(); ++k) {
      num += (static_cast<double>(got[k]) - want.data[k]) * (static_cast<double>(got[k]) - want.data[k]);
      den += static_cast<double>(want.data[k]) * want.data[k];
    }
  }
  const double overall = std::sqrt(num / den);
  std::printf("[ gguf     ] %s-%s: rel_l2 %.3g overall, %.3g worst position; quantization error %.3g\n",
              model_name.c_str(), type.c_str(), overall, worst, quant_err);
  EXPECT_LE(overall, overall_bound);
  if (type != "F16") {
    EXPECT_LE(overall, kMaxFractionOfQuantError * quant_err);
    if (quant_err > 4 * floor) {
      EXPECT_LE(overall, kFractionOfLargeQuantError * quant_err);
    }
  }
}

TEST_P(GgufParity, TeacherForcedArgmaxMatchesGreedyReference) {
  // Prompt 0 followed by the reference continuation, in one forward: at every
  // step without a near-tie our argmax must be llama.cpp's next id.
  const auto [model_name, type] = GetParam();
  auto model = models::Model::load(file_of(model_name, type));
  auto ref = read_json(ref_base(model_name, type).string() + ".reference.json");
  auto ids = ref["prompts"][0].get<std::vector<int32_t>>();
  const size_t p = ids.size();
  auto want = ref["greedy_ids"].get<std::vector<int32_t>>();
  auto margins = ref["greedy_top2_margin"].get<std::vector<double>>();
  ids.insert(ids.end(), want.begin(), want.end() - 1);
  ThreadPool pool(2);
  auto logits = testing::logits_all(*model, ids, pool);
  const size_t V = static_cast<size_t>(model->vocab_size());
  size_t checked = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (margins[i] < kTieMargin) continue;
    const float* row = logits.data() + (p - 1 + i) * V;
    EXPECT_EQ(std::max_element(row, row + V) - row, want[i]) << model_name << "-" << type << " step " << i;
    ++checked;
  }
  EXPECT_GE(checked, want.size() / 2);
}

TEST_P(GgufParity, GreedyIdsMatchUpToFirstSmallMargin) {
  const auto [model_name, type] = GetParam();
  auto model = models::Model::load(file_of(model_name, type));
  auto ref = read_json(ref_base(model_name, type).string() + ".reference.json");
  auto prompt = ref["prompts"][0].get<std::vector<int32_t>>();
  auto want = ref["greedy_ids"].get<std::vector<int32_t>>();
  auto margins = ref["greedy_top2_margin"].get<std::vector<double>>();
  ThreadPool pool(2);
  engine::GenerateOptions go;
  go.max_new_tokens = static_cast<int64_t>(want.size());
  go.ignore_eos = true;
  auto res = engine::generate(*model, prompt, go, pool);
  ASSERT_EQ(res.ids.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (margins[i] < kTieMargin) break;  // past a near-tie the continuations may part
    EXPECT_EQ(res.ids[i], want[i]) << model_name << "-" << type << " step " << i;
    if (res.ids[i] != want[i]) break;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufParity, ::testing::ValuesIn(all_cases()), [](const auto& info) {
  return info.param.model.substr(5) + "_" + info.param.type;  // "llama_Q4_K_M"
});

TEST(GgufModel, ConfigFromMetadata) {
  auto m = models::Model::load(file_of("tiny-qwen2", "Q8_0"));
  const auto& c = m->config();
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.hidden_size, 256);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.dtype.empty());  // float32 RoPE frequencies, like llama.cpp
  auto l = models::Model::load(file_of("tiny-llama", "F16"));
  EXPECT_EQ(l->config().model_type, "llama");
  EXPECT_FALSE(l->config().tie_word_embeddings);
  EXPECT_EQ(l->config().intermediate_size, 768);
  EXPECT_EQ(l->config().num_key_value_heads, 2);
}

// ---- bad files: a fixture with bytes patched -------------------------------

class GgufBadFile : public ::testing::Test {
 protected:
  void SetUp() override { bytes_ = testing::read_file(file_of("tiny-llama", "F16")); }
  // Replaces the first occurrence of `from` (same length as `to`).
  void patch(const std::string& from, const std::string& to) {
    ASSERT_EQ(from.size(), to.size());
    auto pos = bytes_.find(from);
    ASSERT_NE(pos, std::string::npos) << from;
    bytes_.replace(pos, from.size(), to);
  }
  std::string load_error() {
    const auto path = tmp_ / "bad.gguf";
    testing::write_file(path, bytes_);
    try {
      models::Model::load(path);
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << msg;
      return msg;
    }
    ADD_FAILURE() << "no error";
    return "";
  }
  std::string bytes_;
  testing::TempDir tmp_;
};

TEST_F(GgufBadFile, WrongMagic) {
  bytes_[0] = 'X';
  EXPECT_NE(load_error().find("bad magic"), std::string::npos);
}

TEST_F(GgufBadFile, BadVersion) {
  bytes_[4] = 7;
  EXPECT_NE(load_error().find("unsupported GGUF version 7"), std::string::npos);
}

TEST_F(GgufBadFile, Truncated) {
  const std::string whole = bytes_;
  bytes_.resize(bytes_.size() / 2);
  const std::string msg = load_error();
  EXPECT_NE(msg.find("outside"), std::string::npos) << msg;
  for (size_t n : {200, 1000, 3000}) {  // in the metadata, the tensor infos, the data
    bytes_ = whole.substr(0, n);
    const std::string m = load_error();
    EXPECT_NE(m.find("truncated"), std::string::npos) << m;
  }
}

TEST_F(GgufBadFile, UnknownTensorType) {
  // output_norm.weight is 1-D: after its name come n_dims (4 bytes), ne[0] (8), then the type.
  const std::string name = "output_norm.weight";
  auto pos = bytes_.find(name);
  ASSERT_NE(pos, std::string::npos);
  const size_t type_at = pos + name.size() + 4 + 8;
  const uint32_t bad = 99;
  std::memcpy(&bytes_[type_at], &bad, 4);
  const std::string msg = load_error();
  EXPECT_NE(msg.find("tensor 'output_norm.weight' has unknown ggml type 99"), std::string::npos) << msg;
}

TEST_F(GgufBadFile, MissingTensor) {
  patch("blk.1.ffn_up.weight", "blk.1.ffn_up.weighx");
  const std::string msg = load_error();
  EXPECT_NE(msg.find("tensor 'blk.1.ffn_up.weight' not found"), std::string::npos) << msg;
}

TEST_F(GgufBadFile, UnsupportedArchitecture) {
  // The value of general.architecture is the first "llama" after its key.
  const auto key = bytes_.find("general.architecture");
  ASSERT_NE(key, std::string::npos);
  const auto val = bytes_.find("llama", key);
  bytes_.replace(val, 5, "gpt2x");
  const std::string msg = load_error();
  EXPECT_NE(msg.find("unsupported architecture 'gpt2x'"), std::string::npos) << msg;
}

TEST(GgufModel, DirectoryStillMeansHfFolder) {
  EXPECT_THROW(models::Model::load(gguf_dir() / "tiny-llama"), Error);  // a folder without config.json
}

}  // namespace
}  // namespace tandem
