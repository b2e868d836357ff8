#include "models/gguf_vocab_export.h"

#include <fstream>
#include <map>
#include <optional>

#include "base/error.h"
#include "base/log.h"

namespace tandem::models {

namespace {

using nlohmann::json;

// The split regexes llama.cpp names "llama-bpe" and "qwen2" (as Llama 3's and Qwen's
// tokenizer.json files carry them; engine/model_tokenizer.cpp maps the names back).
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp token types (llama_token_type).
constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;

void collect(const json& pt, std::vector<std::string>& regexes, bool& byte_level_regex, bool& byte_level) {
  if (!pt.is_object()) return;
  const std::string type = pt.value("type", "");
  if (type == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].is_array()) {
    for (const auto& x : pt["pretokenizers"]) collect(x, regexes, byte_level_regex, byte_level);
  } else if (type == "Split" && pt.contains("pattern") && pt["pattern"].is_object()) {
    const auto& pat = pt["pattern"];
    if (pat.contains("Regex") && pat["Regex"].is_string()) regexes.push_back(pat["Regex"].get<std::string>());
    if (pat.contains("String") && pat["String"].is_string()) regexes.push_back(pat["String"].get<std::string>());
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (pt.value("use_regex", true)) byte_level_regex = true;
  }
}

std::optional<std::string> read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

json read_json_file(const std::filesystem::path& p) {
  auto text = read_text(p);
  if (!text) throw Error(p.string() + ": cannot be read");
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
}

// "bos_token": "<s>" or {"content": "<s>", ...}.
std::optional<std::string> token_text(const json& cfg, const std::string& key) {
  if (!cfg.contains(key)) return std::nullopt;
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

// Whether the post-processor puts a special token first (the tokenizer adds BOS).
bool post_processor_adds_bos(const json& pp) {
  if (!pp.is_object()) return false;
  const std::string type = pp.value("type", "");
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const auto& x : pp["processors"]) {
      if (post_processor_adds_bos(x)) return true;
    }
    return false;
  }
  if (type == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array() && !pp["single"].empty()) {
    return pp["single"][0].is_object() && pp["single"][0].contains("SpecialToken");
  }
  return false;
}

void add_config_special_ids(formats::GgufWriter& w, const formats::ModelConfig& c, const formats::GenerationConfig& gen) {
  std::optional<int32_t> bos = gen.bos_token_id ? gen.bos_token_id : c.bos_token_id;
  std::vector<int32_t> eos = gen.eos_token_ids.empty() ? c.eos_token_ids : gen.eos_token_ids;
  if (bos && *bos >= 0 && *bos < c.vocab_size) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*bos));
  if (!eos.empty() && eos[0] >= 0 && eos[0] < c.vocab_size) {
    w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos[0]));
  }
  if (gen.pad_token_id && *gen.pad_token_id >= 0 && *gen.pad_token_id < c.vocab_size) {
    w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*gen.pad_token_id));
  }
}

VocabExport no_vocab(formats::GgufWriter& w, const formats::ModelConfig& c, const formats::GenerationConfig& gen,
                     const std::string& why) {
  w.add_string("tokenizer.ggml.model", "none");
  add_config_special_ids(w, c, gen);
  return VocabExport{false, why};
}

void add_chat_template(formats::GgufWriter& w, const std::filesystem::path& dir, const json& tok_cfg) {
  std::optional<std::string> tmpl;
  if (tok_cfg.is_object() && tok_cfg.contains("chat_template")) {
    const auto& t = tok_cfg["chat_template"];
    if (t.is_string()) {
      tmpl = t.get<std::string>();
    } else if (t.is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const auto& x : t) {
        if (x.is_object() && x.value("name", "") == "default" && x.contains("template") && x["template"].is_string()) {
          tmpl = x["template"].get<std::string>();
        }
      }
    }
  }
  if (!tmpl) tmpl = read_text(dir / "chat_template.jinja");
  if (tmpl) w.add_string("tokenizer.chat_template", *tmpl);
}

}  // namespace

std::string gguf_pre_tokenizer_name(const json& pre_tokenizer) {
  std::vector<std::string> regexes;
  bool byte_level_regex = false, byte_level = false;
  collect(pre_tokenizer, regexes, byte_level_regex, byte_level);
  if (regexes.size() == 1 && regexes[0] == kLlama3Split) return "llama-bpe";
  if (regexes.size() == 1 && regexes[0] == kQwen2Split) return "qwen2";
  if (regexes.empty() && byte_level_regex) return "gpt-2";
  return "default";
}

VocabExport add_gguf_vocab(formats::GgufWriter& w, const std::filesystem::path& dir, const formats::ModelConfig& c,
                           const formats::GenerationConfig& gen) {
  const auto tj_path = dir / "tokenizer.json";
  if (!std::filesystem::exists(tj_path)) {
    log::warn(dir.string() + ": no tokenizer.json; the GGUF file gets no vocabulary (tokenizer.ggml.model = none)");
    return no_vocab(w, c, gen, "no tokenizer.json");
  }
  const json tj = read_json_file(tj_path);
  const json tok_cfg = std::filesystem::exists(dir / "tokenizer_config.json") ? read_json_file(dir / "tokenizer_config.json")
                                                                              : json::object();
  const json& model = tj.contains("model") ? tj["model"] : json();
  std::vector<std::string> regexes;
  bool byte_level_regex = false, byte_level = false;
  if (tj.contains("pre_tokenizer")) collect(tj["pre_tokenizer"], regexes, byte_level_regex, byte_level);
  if (!model.is_object() || model.value("type", "") != "BPE" || !byte_level || !model.contains("vocab") ||
      !model["vocab"].is_object()) {
    log::warn(tj_path.string() + ": only byte-level BPE tokenizers are exported to GGUF yet; the file gets no vocabulary");
    return no_vocab(w, c, gen, "tokenizer.json is not byte-level BPE");
  }

  // Tokens by id; ids the tokenizer leaves free up to the embedding's rows become
  // "[PAD<id>]" with type UNUSED, as llama.cpp's converter writes them.
  const int64_t V = c.vocab_size;
  std::vector<std::string> tokens(static_cast<size_t>(V));
  std::vector<int32_t> types(static_cast<size_t>(V), kUnused);
  std::vector<bool> present(static_cast<size_t>(V), false);
  std::map<std::string, int64_t> ids;
  auto put = [&](const std::string& tok, int64_t id, int32_t type) {
    if (id < 0 || id >= V) {
      throw Error(tj_path.string() + ": token '" + tok + "' has id " + std::to_string(id) +
                  ", outside the model's vocab_size " + std::to_string(V));
    }
    tokens[static_cast<size_t>(id)] = tok;
    types[static_cast<size_t>(id)] = type;
    present[static_cast<size_t>(id)] = true;
    ids[tok] = id;
  };
  for (const auto& [tok, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) throw Error(tj_path.string() + ": vocab entry '" + tok + "' is not an integer id");
    put(tok, id.get<int64_t>(), kNormal);
  }
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const auto& a : tj["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content")) continue;
      put(a["content"].get<std::string>(), a["id"].get<int64_t>(), a.value("special", false) ? kControl : kUserDefined);
    }
  }
  for (int64_t i = 0; i < V; ++i) {
    if (!present[static_cast<size_t>(i)]) tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
  }
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array()) {
    merges.reserve(model["merges"].size());
    for (const auto& m : model["merges"]) {
      if (m.is_string()) {
        merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        throw Error(tj_path.string() + ": a merge is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }
  const std::string pre = tj.contains("pre_tokenizer") ? gguf_pre_tokenizer_name(tj["pre_tokenizer"]) : "default";
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_string_array("tokenizer.ggml.tokens", std::move(tokens));
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_string_array("tokenizer.ggml.merges", std::move(merges));

  // Special ids: tokenizer_config.json's tokens by name first, config.json's ids otherwise
  // (llama.cpp's converter does the same).
  auto special = [&](const std::string& key, std::optional<int32_t> fallback) -> std::optional<int64_t> {
    if (auto t = token_text(tok_cfg, key)) {
      if (auto it = ids.find(*t); it != ids.end()) return it->second;
    }
    if (fallback && *fallback >= 0 && *fallback < V) return *fallback;
    return std::nullopt;
  };
  const std::vector<int32_t>& eos_ids = gen.eos_token_ids.empty() ? c.eos_token_ids : gen.eos_token_ids;
  const auto bos = special("bos_token", gen.bos_token_id ? gen.bos_token_id : c.bos_token_id);
  const auto eos = special("eos_token", eos_ids.empty() ? std::nullopt : std::optional<int32_t>(eos_ids[0]));
  const auto pad = special("pad_token", gen.pad_token_id);
  if (bos) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*bos));
  if (eos) w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*eos));
  if (pad) w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*pad));
  bool add_bos = tj.contains("post_processor") && post_processor_adds_bos(tj["post_processor"]);
  if (tok_cfg.contains("add_bos_token") && tok_cfg["add_bos_token"].is_boolean()) add_bos = tok_cfg["add_bos_token"].get<bool>();
  w.add_bool("tokenizer.ggml.add_bos_token", add_bos && bos.has_value());
  if (tok_cfg.contains("add_eos_token") && tok_cfg["add_eos_token"].is_boolean()) {
    w.add_bool("tokenizer.ggml.add_eos_token", tok_cfg["add_eos_token"].get<bool>());
  }
  add_chat_template(w, dir, tok_cfg);
  return VocabExport{true, "gpt2 vocabulary, pre-tokenizer " + pre};
}

}  // namespace tandem::models
