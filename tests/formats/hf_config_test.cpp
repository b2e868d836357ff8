#include "formats/hf_config.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "test_util.h"

namespace tandem {
namespace {

using formats::LayerType;
using nlohmann::json;

json base_config() {
  return json{{"model_type", "llama"},        {"vocab_size", 512},          {"hidden_size", 128},
              {"intermediate_size", 256},     {"num_hidden_layers", 2},     {"num_attention_heads", 4},
              {"num_key_value_heads", 2},     {"rms_norm_eps", 1e-5},       {"max_position_embeddings", 4096}};
}

std::string error_of(const json& j) {
  try {
    formats::parse_model_config(j, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(HfConfig, ParsesEveryFixture) {
  for (const char* name : {"llama", "llama_tied", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"}) {
    auto c = formats::load_model_config(testing::shared_dir() / "fixtures/hf" / name / "config.json");
    EXPECT_GT(c.hidden_size, 0) << name;
    EXPECT_EQ(c.rope.count(LayerType::kFull), 1u) << name;
  }
}

TEST(HfConfig, DerivesHeadDimAndDefaults) {
  auto c = formats::parse_model_config(base_config(), "config.json");
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.rope.at(LayerType::kFull).type, "default");
  EXPECT_EQ(c.rope.at(LayerType::kFull).theta, 10000.0);
  EXPECT_FALSE(c.has_layer_types);
}

TEST(HfConfig, V4RopeScalingAndV5RopeParametersAgree) {
  json v4 = base_config();
  v4["rope_theta"] = 500000.0;
  v4["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  json v5 = base_config();
  v5["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  auto a = formats::parse_model_config(v4, "v4").rope.at(LayerType::kFull);
  auto b = formats::parse_model_config(v5, "v5").rope.at(LayerType::kFull);
  EXPECT_EQ(a.type, "llama3");
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.factor, b.factor);
  EXPECT_EQ(a.original_max_position_embeddings, b.original_max_position_embeddings);
}

TEST(HfConfig, OldTypeKeyIsAccepted) {
  json j = base_config();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(formats::parse_model_config(j, "c").rope.at(LayerType::kFull).type, "linear");
}

TEST(HfConfig, PerLayerTypeRope) {
  json j = base_config();
  j["layer_types"] = {"sliding_attention", "full_attention"};
  j["sliding_window"] = 16;
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  auto c = formats::parse_model_config(j, "c");
  EXPECT_TRUE(c.rope_per_layer_type);
  EXPECT_EQ(c.rope.at(LayerType::kFull).theta, 1e6);
  EXPECT_EQ(c.rope.at(LayerType::kSliding).theta, 1e4);
  EXPECT_EQ(c.layer_types[0], LayerType::kSliding);
  EXPECT_EQ(*c.sliding_window, 16);
}

TEST(HfConfig, ErrorsNameTheField) {
  json j = base_config();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("'hidden_size'"), std::string::npos);
  j = base_config();
  j["num_attention_heads"] = "four";
  EXPECT_NE(error_of(j).find("'num_attention_heads'"), std::string::npos);
  j = base_config();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("num_key_value_heads"), std::string::npos);
  j = base_config();
  j["layer_types"] = {"full_attention"};
  EXPECT_NE(error_of(j).find("layer_types"), std::string::npos);
  j = base_config();
  j["rope_scaling"] = {{"rope_type", "weird"}};
  EXPECT_NE(error_of(j).find("weird"), std::string::npos);
  j = base_config();
  j["vocab_size"] = -3;
  EXPECT_NE(error_of(j).find("'vocab_size'"), std::string::npos);
  j = base_config();
  j.erase("model_type");
  EXPECT_NE(error_of(j).find("model_type"), std::string::npos);
}

TEST(HfConfig, GenerationConfigEosIntOrList) {
  auto a = formats::parse_generation_config(json{{"eos_token_id", 7}}, "g");
  EXPECT_EQ(a.eos_token_ids, (std::vector<int32_t>{7}));
  auto b = formats::parse_generation_config(json{{"eos_token_id", {1, 106}}, {"do_sample", true}, {"top_p", 0.9}}, "g");
  EXPECT_EQ(b.eos_token_ids, (std::vector<int32_t>{1, 106}));
  EXPECT_TRUE(b.do_sample);
  EXPECT_DOUBLE_EQ(*b.top_p, 0.9);
  EXPECT_THROW(formats::parse_generation_config(json{{"eos_token_id", "x"}}, "g"), Error);
  auto missing = formats::load_generation_config("/nonexistent/generation_config.json");
  EXPECT_TRUE(missing.eos_token_ids.empty());
}

}  // namespace
}  // namespace tandem
