// Hugging Face config.json and generation_config.json, in both the
// transformers v4 style (rope_theta, rope_scaling, sliding_window_pattern,
// rope_local_base_freq) and the v5 style (rope_parameters, possibly per layer
// type, and layer_types). Parsing is generic; a family (models/) fills in the
// defaults that only it knows (e.g. Gemma's sliding/global alternation).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tandem::formats {

// RoPE frequency parameters for one kind of layer.
struct RopeParams {
  std::string type = "default";  // default | linear | dynamic | llama3 | yarn | longrope
  double theta = 10000.0;
  double factor = 1.0;
  double partial_rotary_factor = 1.0;
  int64_t original_max_position_embeddings = 0;  // 0: use max_position_embeddings
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;
  // longrope
  std::vector<double> short_factor;
  std::vector<double> long_factor;
};

enum class LayerType { kFull, kSliding };

struct ModelConfig {
  std::string source;      // path of config.json, for messages
  std::string model_type;  // config.json "model_type"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // explicit, or hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  std::string hidden_act = "silu";
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 4096;
  bool attention_bias = false;
  bool mlp_bias = false;
  std::optional<int64_t> sliding_window;  // tokens a sliding layer sees, itself included
  std::vector<LayerType> layer_types;     // one per layer
  std::map<LayerType, RopeParams> rope;   // per layer type
  std::optional<double> attn_logit_softcapping;
  std::optional<double> final_logit_softcapping;
  std::optional<double> query_pre_attn_scalar;
  std::vector<int32_t> eos_token_ids;  // from config.json (generation_config adds more)
  std::optional<int32_t> bos_token_id;
  std::string dtype;  // "dtype" (v5) or "torch_dtype" (v4): the checkpoint's compute dtype, e.g. "bfloat16"

  nlohmann::json raw;  // the whole file, for family-specific keys
  bool has_layer_types = false;      // layer_types was given explicitly (v5 style)
  bool rope_per_layer_type = false;  // rope_parameters was keyed by layer type (v5 style)
};

// Reads and validates config.json. Throws tandem::Error naming the file and field.
ModelConfig load_model_config(const std::filesystem::path& config_json);
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);
RopeParams parse_rope_params(const nlohmann::json& j, double default_theta, double partial_rotary_factor,
                             const std::string& where);

struct GenerationConfig {
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> bos_token_id;
  std::optional<int32_t> pad_token_id;
  bool do_sample = false;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
};

// A missing file gives the defaults; a malformed one throws tandem::Error.
GenerationConfig load_generation_config(const std::filesystem::path& path);
GenerationConfig parse_generation_config(const nlohmann::json& j, const std::string& source);

// "an int or a list of ints" (eos_token_id) -> list.
std::vector<int32_t> parse_id_or_list(const nlohmann::json& v, const std::string& where);

}  // namespace tandem::formats
