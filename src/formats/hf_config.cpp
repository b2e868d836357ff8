#include "formats/hf_config.h"

#include <fstream>

#include "base/error.h"

namespace tandem::formats {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& what) { throw Error(source + ": " + what); }

int64_t get_int(const json& j, const char* key, const std::string& source, std::optional<int64_t> def = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    fail(source, std::string("missing required field '") + key + "'");
  }
  if (!it->is_number_integer()) fail(source, std::string("field '") + key + "' must be an integer");
  return it->get<int64_t>();
}

int64_t get_positive(const json& j, const char* key, const std::string& source,
                     std::optional<int64_t> def = std::nullopt) {
  int64_t v = get_int(j, key, source, def);
  if (v <= 0) fail(source, std::string("field '") + key + "' must be positive, got " + std::to_string(v));
  return v;
}

double get_num(const json& j, const char* key, const std::string& source, double def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) fail(source, std::string("field '") + key + "' must be a number");
  return it->get<double>();
}

std::optional<double> get_opt_num(const json& j, const char* key, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) fail(source, std::string("field '") + key + "' must be a number or null");
  return it->get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& source, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(source, std::string("field '") + key + "' must be true or false");
  return it->get<bool>();
}

std::vector<double> get_num_list(const json& j, const char* key, const std::string& where) {
  std::vector<double> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) fail(where, std::string("field '") + key + "' must be a list of numbers");
  for (const auto& x : *it) {
    if (!x.is_number()) fail(where, std::string("field '") + key + "' must be a list of numbers");
    out.push_back(x.get<double>());
  }
  return out;
}

std::optional<LayerType> layer_type_from(const std::string& s) {
  if (s == "full_attention") return LayerType::kFull;
  if (s == "sliding_attention") return LayerType::kSliding;
  return std::nullopt;
}

}  // namespace

std::vector<int32_t> parse_id_or_list(const json& v, const std::string& where) {
  std::vector<int32_t> out;
  if (v.is_null()) return out;
  auto one = [&](const json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) {
      fail(where, "must be a token id or a list of token ids");
    }
    out.push_back(static_cast<int32_t>(x.get<int64_t>()));
  };
  if (v.is_array()) {
    for (const auto& x : v) one(x);
  } else {
    one(v);
  }
  return out;
}

RopeParams parse_rope_params(const json& j, double default_theta, double partial_rotary_factor,
                             const std::string& where) {
  RopeParams r;
  r.theta = default_theta;
  r.partial_rotary_factor = partial_rotary_factor;
  if (j.is_null()) return r;
  if (!j.is_object()) fail(where, "must be an object or null");
  if (j.contains("rope_type") && j["rope_type"].is_string()) {
    r.type = j["rope_type"].get<std::string>();
  } else if (j.contains("type") && j["type"].is_string()) {  // older v4 spelling
    r.type = j["type"].get<std::string>();
  }
  if (r.type == "su") r.type = "longrope";  // Phi-3's earlier name
  r.theta = get_num(j, "rope_theta", where, default_theta);
  r.factor = get_num(j, "factor", where, 1.0);
  r.partial_rotary_factor = get_num(j, "partial_rotary_factor", where, partial_rotary_factor);
  r.original_max_position_embeddings = get_int(j, "original_max_position_embeddings", where, 0);
  r.low_freq_factor = get_num(j, "low_freq_factor", where, 1.0);
  r.high_freq_factor = get_num(j, "high_freq_factor", where, 4.0);
  r.beta_fast = get_num(j, "beta_fast", where, 32.0);
  r.beta_slow = get_num(j, "beta_slow", where, 1.0);
  r.attention_factor = get_opt_num(j, "attention_factor", where);
  r.mscale = get_opt_num(j, "mscale", where);
  r.mscale_all_dim = get_opt_num(j, "mscale_all_dim", where);
  r.truncate = get_bool(j, "truncate", where, true);
  r.short_factor = get_num_list(j, "short_factor", where);
  r.long_factor = get_num_list(j, "long_factor", where);
  static const char* kKnown[] = {"default", "linear", "dynamic", "llama3", "yarn", "longrope"};
  bool known = false;
  for (const char* k : kKnown) known = known || r.type == k;
  if (!known) {
    fail(where, "rope type '" + r.type + "' is not supported (supported: default, linear, dynamic, llama3, yarn, longrope)");
  }
  if (r.theta <= 0) fail(where, "rope_theta must be positive");
  if (r.factor <= 0) fail(where, "factor must be positive");
  return r;
}

ModelConfig parse_model_config(const json& j, const std::string& source) {
  if (!j.is_object()) fail(source, "not a JSON object");
  ModelConfig c;
  c.source = source;
  c.raw = j;
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) fail(source, "missing string field 'model_type'");
  c.model_type = mt->get<std::string>();
  c.vocab_size = get_positive(j, "vocab_size", source);
  c.hidden_size = get_positive(j, "hidden_size", source);
  c.intermediate_size = get_positive(j, "intermediate_size", source);
  c.num_hidden_layers = get_positive(j, "num_hidden_layers", source);
  c.num_attention_heads = get_positive(j, "num_attention_heads", source);
  c.num_key_value_heads = get_positive(j, "num_key_value_heads", source, c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    fail(source, "num_attention_heads (" + std::to_string(c.num_attention_heads) +
                     ") is not a multiple of num_key_value_heads (" + std::to_string(c.num_key_value_heads) + ")");
  }
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_positive(j, "head_dim", source);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      fail(source, "hidden_size is not a multiple of num_attention_heads and no head_dim is given");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) fail(source, "head_dim must be even for rotary embeddings");
  c.rms_norm_eps = get_num(j, "rms_norm_eps", source, 1e-6);
  for (const char* key : {"hidden_act", "hidden_activation"}) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null()) {
      if (!it->is_string()) fail(source, std::string("field '") + key + "' must be a string");
      c.hidden_act = it->get<std::string>();
    }
  }
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", source, false);
  c.max_position_embeddings = get_positive(j, "max_position_embeddings", source, 4096);
  c.attention_bias = get_bool(j, "attention_bias", source, false);
  c.mlp_bias = get_bool(j, "mlp_bias", source, false);
  if (j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    c.sliding_window = get_positive(j, "sliding_window", source);
  }
  c.attn_logit_softcapping = get_opt_num(j, "attn_logit_softcapping", source);
  c.final_logit_softcapping = get_opt_num(j, "final_logit_softcapping", source);
  c.query_pre_attn_scalar = get_opt_num(j, "query_pre_attn_scalar", source);
  if (j.contains("eos_token_id")) c.eos_token_ids = parse_id_or_list(j["eos_token_id"], source + ": eos_token_id");
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) {
    c.bos_token_id = j["bos_token_id"].get<int32_t>();
  }

  for (const char* key : {"dtype", "torch_dtype"}) {
    if (j.contains(key) && j[key].is_string()) {
      c.dtype = j[key].get<std::string>();
      break;
    }
  }

  // Layer types (v5). v4 configs leave this to the family's defaults.
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    const json& lt = j["layer_types"];
    if (!lt.is_array() || lt.size() != static_cast<size_t>(c.num_hidden_layers)) {
      fail(source, "field 'layer_types' must be a list of num_hidden_layers (" + std::to_string(c.num_hidden_layers) +
                       ") strings");
    }
    for (size_t i = 0; i < lt.size(); ++i) {
      auto t = lt[i].is_string() ? layer_type_from(lt[i].get<std::string>()) : std::nullopt;
      if (!t) fail(source, "layer_types[" + std::to_string(i) + "] must be 'full_attention' or 'sliding_attention'");
      c.layer_types.push_back(*t);
    }
    c.has_layer_types = true;
  }

  // RoPE: v5 rope_parameters (flat, or keyed by layer type), else v4 rope_theta + rope_scaling.
  double partial = get_num(j, "partial_rotary_factor", source, 1.0);
  double theta_v4 = get_num(j, "rope_theta", source, 10000.0);
  auto rp = j.find("rope_parameters");
  if (rp != j.end() && !rp->is_null()) {
    if (!rp->is_object()) fail(source, "field 'rope_parameters' must be an object");
    bool keyed = rp->contains("full_attention") || rp->contains("sliding_attention");
    if (keyed) {
      c.rope_per_layer_type = true;
      for (auto it = rp->begin(); it != rp->end(); ++it) {
        auto t = layer_type_from(it.key());
        if (!t) fail(source, "rope_parameters." + it.key() + ": unknown layer type");
        c.rope[*t] = parse_rope_params(it.value(), theta_v4, partial, source + ": rope_parameters." + it.key());
      }
    } else {
      RopeParams r = parse_rope_params(*rp, theta_v4, partial, source + ": rope_parameters");
      c.rope[LayerType::kFull] = r;
      c.rope[LayerType::kSliding] = r;
    }
  } else {
    auto rs = j.find("rope_scaling");
    RopeParams r = parse_rope_params(rs == j.end() ? json() : *rs, theta_v4, partial, source + ": rope_scaling");
    r.theta = theta_v4;
    c.rope[LayerType::kFull] = r;
    c.rope[LayerType::kSliding] = r;
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string() + ": cannot open (is this a Hugging Face model folder?)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
  return parse_model_config(j, path.string());
}

GenerationConfig parse_generation_config(const json& j, const std::string& source) {
  GenerationConfig g;
  if (!j.is_object()) fail(source, "not a JSON object");
  if (j.contains("eos_token_id")) g.eos_token_ids = parse_id_or_list(j["eos_token_id"], source + ": eos_token_id");
  if (j.contains("bos_token_id") && !j["bos_token_id"].is_null()) g.bos_token_id = static_cast<int32_t>(get_int(j, "bos_token_id", source));
  if (j.contains("pad_token_id") && !j["pad_token_id"].is_null()) g.pad_token_id = static_cast<int32_t>(get_int(j, "pad_token_id", source));
  g.do_sample = get_bool(j, "do_sample", source, false);
  g.temperature = get_opt_num(j, "temperature", source);
  if (j.contains("top_k") && !j["top_k"].is_null()) g.top_k = get_int(j, "top_k", source);
  g.top_p = get_opt_num(j, "top_p", source);
  g.min_p = get_opt_num(j, "min_p", source);
  g.repetition_penalty = get_opt_num(j, "repetition_penalty", source);
  if (j.contains("max_new_tokens") && !j["max_new_tokens"].is_null()) g.max_new_tokens = get_int(j, "max_new_tokens", source);
  return g;
}

GenerationConfig load_generation_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return {};
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
  return parse_generation_config(j, path.string());
}

}  // namespace tandem::formats
