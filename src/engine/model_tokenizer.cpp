#include "engine/model_tokenizer.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace tandem::engine {
namespace {

using nlohmann::ordered_json;

// Split regexes of the BPE pre-tokenizer families llama.cpp names in
// tokenizer.ggml.pre (the same patterns their tokenizer.json files carry).
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp token types (llama_token_type): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
constexpr int64_t kControl = 3, kUserDefined = 4;

// Stands in for the vocabulary object in the document until it is spliced in as text.
constexpr const char* kVocabPlaceholder = "\x01tandem-vocab\x01";

ordered_json split_then_bytes(const char* regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           ordered_json::array({{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}};
}

// Protocol-buffer wire format, just enough to write a SentencePiece ModelProto.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, int field, int wire) { put_varint(out, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
void put_int(std::string& out, int field, int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));  // negative ints: ten-byte two's complement, as protobuf
}
void put_bytes(std::string& out, int field, std::string_view b) {
  put_tag(out, field, 2);
  put_varint(out, b.size());
  out.append(b);
}
void put_float(std::string& out, int field, float f) {
  put_tag(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

std::vector<int32_t> i32_array(const formats::Gguf& g, const std::string& key, size_t n, int32_t def) {
  std::vector<int32_t> v(n, def);
  if (const formats::GgufValue* a = g.find(key); a != nullptr) {
    if (a->type != formats::GgufValueType::kArray || a->count != n || a->raw.size() != n * 4) {
      throw Error(g.source + ": " + key + " must be a 32-bit array with one entry per token");
    }
    std::memcpy(v.data(), a->raw.data(), n * 4);
  }
  return v;
}

// llama.cpp's "llama" vocabulary is a SentencePiece BPE model (Llama 1/2,
// Mistral, Gemma, Phi-3) flattened into metadata: pieces, scores and types (its
// token types use SentencePiece's numbering). Rebuild the ModelProto and let the
// sentencepiece library run it, as for a tokenizer.model file. Field numbers are
// those of sentencepiece_model.proto (ModelProto: pieces 1, trainer_spec 2,
// normalizer_spec 3; piece: piece 1, score 2, type 3; TrainerSpec: model_type 3,
// vocab_size 4, byte_fallback 35, unk/bos/eos/pad ids 40-43; NormalizerSpec:
// name 1, add_dummy_prefix 3, remove_extra_whitespaces 4, escape_whitespaces 5).
std::unique_ptr<tokenizer::Tokenizer> sentencepiece_from_gguf(const formats::Gguf& g) {
  const std::vector<std::string> tokens = g.get_string_array("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  std::vector<float> scores(n, 0.0f);
  if (const formats::GgufValue* a = g.find("tokenizer.ggml.scores"); a != nullptr) {
    if (a->type != formats::GgufValueType::kArray || a->count != n || a->raw.size() != n * 4) {
      throw Error(g.source + ": tokenizer.ggml.scores must be an f32 array with one entry per token");
    }
    std::memcpy(scores.data(), a->raw.data(), n * 4);
  }
  const std::vector<int32_t> types = i32_array(g, "tokenizer.ggml.token_type", n, 1);
  std::string proto;
  bool byte_fallback = false;
  for (size_t i = 0; i < n; ++i) {
    if (types[i] < 1 || types[i] > 6) {
      throw Error(g.source + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(types[i]) +
                  " is not a SentencePiece piece type (1-6)");
    }
    byte_fallback |= types[i] == 6;
    std::string piece;
    put_bytes(piece, 1, tokens[i]);
    put_float(piece, 2, scores[i]);
    put_int(piece, 3, types[i]);
    put_bytes(proto, 1, piece);
  }
  auto id_or = [&](const char* key, int64_t def) {
    const int64_t id = g.get_int_or(key, def);
    if (id >= static_cast<int64_t>(n)) throw Error(g.source + ": " + key + " is outside the vocabulary");
    return id;
  };
  std::string trainer;
  put_int(trainer, 3, 2);  // BPE
  put_int(trainer, 4, static_cast<int64_t>(n));
  put_int(trainer, 35, byte_fallback ? 1 : 0);
  put_int(trainer, 40, id_or("tokenizer.ggml.unknown_token_id", 0));
  put_int(trainer, 41, id_or("tokenizer.ggml.bos_token_id", -1));
  put_int(trainer, 42, id_or("tokenizer.ggml.eos_token_id", -1));
  put_int(trainer, 43, id_or("tokenizer.ggml.padding_token_id", -1));
  put_bytes(proto, 2, trainer);
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, g.get_bool_or("tokenizer.ggml.add_space_prefix", true) ? 1 : 0);
  put_int(normalizer, 4, g.get_bool_or("tokenizer.ggml.remove_extra_whitespaces", false) ? 1 : 0);
  put_int(normalizer, 5, 1);
  put_bytes(proto, 3, normalizer);
  return tokenizer::Tokenizer::from_sentencepiece(proto, g.source + " (tokenizer.ggml.*)");
}

}  // namespace

std::unique_ptr<tokenizer::Tokenizer> tokenizer_from_gguf(const formats::Gguf& g) {
  const std::string model = g.get_string("tokenizer.ggml.model");
  if (model == "none" || model == "no_vocab") {
    throw Error(g.source + ": the file has no vocabulary (tokenizer.ggml.model '" + model + "'); give token ids instead");
  }
  if (model == "llama") return sentencepiece_from_gguf(g);
  if (model != "gpt2") {
    throw Error(g.source + ": tokenizer.ggml.model '" + model + "' is not supported yet (supported: gpt2, llama)");
  }
  const std::string pre = g.get_string_opt("tokenizer.ggml.pre").value_or("default");
  ordered_json pre_tokenizer;
  bool ignore_merges = false;
  if (pre == "default" || pre == "gpt-2") {
    pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  } else if (pre == "llama-bpe" || pre == "llama3") {
    pre_tokenizer = split_then_bytes(kLlama3Split);
    ignore_merges = true;  // as Llama 3's tokenizer.json
  } else if (pre == "qwen2") {
    pre_tokenizer = split_then_bytes(kQwen2Split);
  } else {
    throw Error(g.source + ": tokenizer.ggml.pre '" + pre + "' is not supported yet (supported: default, gpt-2, llama-bpe, qwen2)");
  }

  const std::vector<std::string> tokens = g.get_string_array("tokenizer.ggml.tokens");
  std::vector<std::string> merges;
  if (g.find("tokenizer.ggml.merges") != nullptr) merges = g.get_string_array("tokenizer.ggml.merges");
  std::vector<int64_t> types(tokens.size(), 1);
  if (const formats::GgufValue* tt = g.find("tokenizer.ggml.token_type"); tt != nullptr) {
    if (tt->type != formats::GgufValueType::kArray || tt->count != tokens.size() || tt->raw.size() != tokens.size() * 4) {
      throw Error(g.source + ": tokenizer.ggml.token_type must be an i32 array with one entry per token");
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
      int32_t v;
      std::memcpy(&v, tt->raw.data() + i * 4, 4);
      types[i] = v;
    }
  }

  // A std::map-backed object: ordered_json's insertion searches its keys linearly, which is
  // quadratic over a 150k-token vocabulary (20 s); the vocab's key order does not matter.
  nlohmann::json vocab = nlohmann::json::object();
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = i;
    if (types[i] == kControl || types[i] == kUserDefined) {
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", types[i] == kUserDefined}, {"special", types[i] == kControl}});
    }
  }
  ordered_json post = nullptr;
  if (g.get_bool_or("tokenizer.ggml.add_bos_token", false) && g.find("tokenizer.ggml.bos_token_id") != nullptr) {
    const int64_t bos = g.get_int("tokenizer.ggml.bos_token_id");
    if (bos < 0 || static_cast<size_t>(bos) >= tokens.size()) {
      throw Error(g.source + ": tokenizer.ggml.bos_token_id " + std::to_string(bos) + " is outside the vocabulary");
    }
    const std::string& b = tokens[static_cast<size_t>(bos)];
    post = {{"type", "TemplateProcessing"},
            {"single", ordered_json::array({{{"SpecialToken", {{"id", b}, {"type_id", 0}}}},
                                            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"pair", ordered_json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"special_tokens", {{b, {{"id", b}, {"ids", {bos}}, {"tokens", {b}}}}}}};
  }
  ordered_json doc = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", ignore_merges}, {"vocab", kVocabPlaceholder}, {"merges", merges}}}};
  // Splice the vocabulary in as text (converting it to ordered_json would be quadratic again).
  std::string text = doc.dump();
  const std::string placeholder = ordered_json(kVocabPlaceholder).dump();
  text.replace(text.find(placeholder), placeholder.size(), vocab.dump());
  return tokenizer::Tokenizer::from_json(text, g.source + " (tokenizer.ggml.*)");
}

std::unique_ptr<tokenizer::Tokenizer> load_model_tokenizer(const std::filesystem::path& model) {
  if (model.extension() == ".gguf" && !std::filesystem::is_directory(model)) {
    auto file = formats::GgufFile::open(model);
    return tokenizer_from_gguf(file->gguf());
  }
  return tokenizer::Tokenizer::load(model);
}

std::optional<tokenizer::ChatTemplate> load_model_chat_template(const std::filesystem::path& model,
                                                                std::string* bos_token, std::string* eos_token) {
  if (model.extension() == ".gguf" && !std::filesystem::is_directory(model)) {
    auto file = formats::GgufFile::open(model);
    const formats::Gguf& g = file->gguf();
    const std::optional<std::string> text = g.get_string_opt("tokenizer.chat_template");
    if (!text) return std::nullopt;
    const std::vector<std::string> tokens =
        g.find("tokenizer.ggml.tokens") ? g.get_string_array("tokenizer.ggml.tokens") : std::vector<std::string>{};
    auto token = [&](const char* key) -> std::string {
      const int64_t id = g.get_int_or(key, -1);
      return id >= 0 && static_cast<size_t>(id) < tokens.size() ? tokens[static_cast<size_t>(id)] : std::string();
    };
    if (bos_token) *bos_token = token("tokenizer.ggml.bos_token_id");
    if (eos_token) *eos_token = token("tokenizer.ggml.eos_token_id");
    return tokenizer::ChatTemplate::parse(*text);
  }
  const bool has = std::filesystem::exists(model / "chat_template.jinja") || [&] {
    std::ifstream in(model / "tokenizer_config.json", std::ios::binary);
    if (!in) return false;
    std::ostringstream s;
    s << in.rdbuf();
    const auto config = nlohmann::json::parse(s.str(), nullptr, /*allow_exceptions=*/false);
    return config.is_object() && config.contains("chat_template") && !config["chat_template"].is_null();
  }();
  if (!has) return std::nullopt;
  return tokenizer::ChatTemplate::from_model_dir(model, "default", bos_token, eos_token);
}

}  // namespace tandem::engine
