// Model loading: v4-style configs equal v5-style ones, and bad model folders
// fail with one clear error naming the file, tensor or field.
#include "models/model.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "models/arch.h"
#include "test_util.h"

namespace tandem {
namespace {

using nlohmann::json;
using testing::shared_dir;
using testing::TempDir;

const std::vector<std::string> kFixtures = {"llama", "llama_tied", "mistral", "qwen2",
                                            "qwen3", "phi3",       "gemma2",  "gemma3"};

std::filesystem::path fixture(const std::string& name) { return shared_dir() / "fixtures" / "hf" / name; }

// Rewrites a transformers v5 config.json the way v4 wrote it: rope_theta and
// rope_scaling instead of rope_parameters, rope_local_base_freq for Gemma 3's
// local layers, sliding_window_pattern instead of layer_types.
json to_v4(json c) {
  auto split = [](json rp, json& out_scaling) -> double {
    double theta = rp.value("rope_theta", 10000.0);
    rp.erase("rope_theta");
    std::string type = rp.value("rope_type", "default");
    if (rp.contains("partial_rotary_factor")) rp.erase("partial_rotary_factor");
    out_scaling = type == "default" ? json(nullptr) : rp;
    return theta;
  };
  if (c.contains("rope_parameters")) {
    json rp = c["rope_parameters"];
    c.erase("rope_parameters");
    json scaling;
    if (rp.contains("full_attention")) {
      c["rope_theta"] = split(rp["full_attention"], scaling);
      c["rope_scaling"] = scaling;
      json unused;
      c["rope_local_base_freq"] = split(rp["sliding_attention"], unused);
    } else {
      if (rp.contains("partial_rotary_factor")) c["partial_rotary_factor"] = rp["partial_rotary_factor"];
      c["rope_theta"] = split(rp, scaling);
      c["rope_scaling"] = scaling;
    }
  }
  c.erase("layer_types");
  if (c.contains("_sliding_window_pattern")) {
    c["sliding_window_pattern"] = c["_sliding_window_pattern"];
    c.erase("_sliding_window_pattern");
  }
  return c;
}

// A folder with the fixture's weights (symlinked) and the given config.json.
void make_model_dir(const std::filesystem::path& dir, const std::string& name, const json& config) {
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(fixture(name) / "model.safetensors", dir / "model.safetensors");
  std::filesystem::copy_file(fixture(name) / "generation_config.json", dir / "generation_config.json");
  testing::write_file(dir / "config.json", config.dump(2));
}

std::vector<float> logits_of(const models::Model& m, const std::vector<int32_t>& ids) {
  ThreadPool pool(1);
  std::vector<float> out(ids.size() * static_cast<size_t>(m.vocab_size()));
  auto cache = m.new_cache();
  models::Workspace ws;
  models::SeqInput in{ids, &cache, true, out.data()};
  m.forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
  return out;
}

std::string load_error(const std::filesystem::path& dir) {
  try {
    models::Model::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded without error)";
}

class V4Config : public ::testing::TestWithParam<std::string> {};

TEST_P(V4Config, GivesTheSameLogitsAsV5) {
  TempDir tmp;
  json v5 = testing::read_json(fixture(GetParam()) / "config.json");
  json v4 = to_v4(v5);
  ASSERT_FALSE(v4.contains("rope_parameters"));
  ASSERT_FALSE(v4.contains("layer_types"));
  make_model_dir(tmp / "v4", GetParam(), v4);
  auto a = models::Model::load(fixture(GetParam()));
  auto b = models::Model::load(tmp / "v4");
  EXPECT_EQ(a->config().layer_types, b->config().layer_types);
  auto prompt = testing::read_json(fixture(GetParam()) / "reference.json")["prompts"][2].get<std::vector<int32_t>>();
  auto la = logits_of(*a, prompt);
  auto lb = logits_of(*b, prompt);
  ASSERT_EQ(la.size(), lb.size());
  EXPECT_EQ(testing::rel_l2(lb.data(), la.data(), la.size()), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, V4Config, ::testing::ValuesIn(kFixtures), [](const auto& i) { return i.param; });

TEST(ModelLoad, ShardedCheckpointGivesTheSameLogits) {
  // The llama fixture re-written as two shards plus model.safetensors.index.json.
  TempDir tmp;
  const auto src = fixture("llama");
  auto single = formats::SafetensorsFile::open(src / "model.safetensors");
  std::vector<formats::TensorToWrite> first, second;
  json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
  size_t i = 0;
  for (const auto& e : single->header().entries) {
    TensorView v = single->view(e);
    const bool in_first = i++ % 2 == 0;
    (in_first ? first : second).push_back({e.name, v.dtype, v.shape, v.data});
    index["weight_map"][e.name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  std::filesystem::create_directories(tmp / "m");
  formats::write_safetensors(tmp / "m" / "model-00001-of-00002.safetensors", first);
  formats::write_safetensors(tmp / "m" / "model-00002-of-00002.safetensors", second);
  testing::write_file(tmp / "m" / "model.safetensors.index.json", index.dump());
  std::filesystem::copy_file(src / "config.json", tmp / "m" / "config.json");
  auto a = models::Model::load(src);
  auto b = models::Model::load(tmp / "m");
  std::vector<int32_t> ids = {5, 17, 300, 2, 9};
  auto la = logits_of(*a, ids), lb = logits_of(*b, ids);
  EXPECT_EQ(la, lb);
}

// q/k/v and gate/up joined into one matrix each at load (LoadOptions::join_matrices)
// compute the same rows as the separate matrices: logits bit for bit, for
// every family (Qwen2's q/k/v biases and Phi-3's own fused weights included),
// as stored and quantized (Q8_0 interleaved on AVX-512 machines; Q4_K's mix
// gives v another type than q/k, so only gate/up join there).
TEST(ModelLoad, JoinedMatricesGiveTheSameLogits) {
  std::vector<int32_t> ids = {5, 17, 300, 2, 9, 44, 81};
  for (const std::string& name : kFixtures) {
    for (std::optional<DType> q : {std::optional<DType>{}, std::optional<DType>{DType::kQ8_0},
                                   std::optional<DType>{DType::kQ4_K}}) {
      models::LoadOptions joined, separate;
      joined.quantize = separate.quantize = q;
      separate.join_matrices = false;
      auto a = models::Model::load(fixture(name), joined);
      auto b = models::Model::load(fixture(name), separate);
      EXPECT_EQ(a->info().weight_bytes, b->info().weight_bytes) << name;
      EXPECT_EQ(logits_of(*a, ids), logits_of(*b, ids)) << name << " " << (q ? dtype_name(*q) : "as stored");
    }
  }
}

TEST(ModelLoad, UnknownArchitectureListsSupportedOnes) {
  TempDir tmp;
  json c = testing::read_json(fixture("llama") / "config.json");
  c["model_type"] = "mamba";
  make_model_dir(tmp / "m", "llama", c);
  std::string e = load_error(tmp / "m");
  EXPECT_NE(e.find("'mamba'"), std::string::npos) << e;
  EXPECT_NE(e.find("gemma2"), std::string::npos) << e;
  EXPECT_NE(e.find("qwen3"), std::string::npos) << e;
}

TEST(ModelLoad, ShapeDisagreeingWithConfigNamesTensor) {
  TempDir tmp;
  json c = testing::read_json(fixture("llama") / "config.json");
  c["intermediate_size"] = 300;
  make_model_dir(tmp / "m", "llama", c);
  std::string e = load_error(tmp / "m");
  EXPECT_NE(e.find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[256, 128]"), std::string::npos) << e;
  EXPECT_NE(e.find("[300, 128]"), std::string::npos) << e;
}

TEST(ModelLoad, MissingTensorIsNamed) {
  TempDir tmp;
  json c = testing::read_json(fixture("llama") / "config.json");
  c["num_hidden_layers"] = 4;  // the file has 3
  make_model_dir(tmp / "m", "llama", c);
  std::string e = load_error(tmp / "m");
  EXPECT_NE(e.find("model.layers.3."), std::string::npos) << e;
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
}

TEST(ModelLoad, MissingLmHeadWhenUntiedIsNamed) {
  TempDir tmp;
  json c = testing::read_json(fixture("llama_tied") / "config.json");
  c["tie_word_embeddings"] = false;
  make_model_dir(tmp / "m", "llama_tied", c);
  std::string e = load_error(tmp / "m");
  EXPECT_NE(e.find("lm_head.weight"), std::string::npos) << e;
}

TEST(ModelLoad, MissingFilesAreNamed) {
  TempDir tmp;
  EXPECT_NE(load_error(tmp / "nope").find("no such directory"), std::string::npos);
  std::filesystem::create_directories(tmp / "empty");
  EXPECT_NE(load_error(tmp / "empty").find("config.json"), std::string::npos);
  testing::write_file(tmp / "empty" / "config.json", "{ not json");
  EXPECT_NE(load_error(tmp / "empty").find("not valid JSON"), std::string::npos);
  testing::write_file(tmp / "empty" / "config.json", testing::read_json(fixture("llama") / "config.json").dump());
  EXPECT_NE(load_error(tmp / "empty").find("model.safetensors"), std::string::npos);
}

TEST(ModelLoad, WrongDtypeWeightIsNamed) {
  TempDir tmp;
  std::filesystem::create_directories(tmp / "m");
  json c = testing::read_json(fixture("llama") / "config.json");
  testing::write_file(tmp / "m" / "config.json", c.dump());
  std::vector<int32_t> ints(512 * 128, 0);
  formats::write_safetensors(tmp / "m" / "model.safetensors",
                             {{"model.embed_tokens.weight", DType::kI32, {512, 128}, ints.data()}});
  std::string e = load_error(tmp / "m");
  EXPECT_NE(e.find("model.embed_tokens.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("I32"), std::string::npos) << e;
}

TEST(ModelForward, IdsOutsideVocabularyAreRejectedWithoutTouchingTheCache) {
  auto m = models::Model::load(fixture("llama"));
  ThreadPool pool(1);
  auto cache = m->new_cache();
  models::Workspace ws;
  std::vector<int32_t> ids = {1, 2, 512};
  models::SeqInput in{ids, &cache, false, nullptr};
  try {
    m->forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos);
  }
  EXPECT_EQ(cache.length(), 0);
}

TEST(ModelForward, ContextOverflowIsAnError) {
  auto m = models::Model::load(fixture("llama"));
  ThreadPool pool(1);
  auto cache = m->new_cache(4);
  models::Workspace ws;
  std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  models::SeqInput in{ids, &cache, false, nullptr};
  EXPECT_THROW(m->forward(std::span<const models::SeqInput>(&in, 1), ws, pool), Error);
  EXPECT_EQ(cache.length(), 0);
}

TEST(Registry, KnowsEveryFamily) {
  for (const char* t : {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3_text"}) {
    EXPECT_NE(models::find_family(t), nullptr) << t;
  }
  EXPECT_EQ(models::find_family("gpt2"), nullptr);
}

}  // namespace
}  // namespace tandem
