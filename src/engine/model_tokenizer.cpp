#include "engine/model_tokenizer.h"

#include <cstring>
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

}  // namespace

std::unique_ptr<tokenizer::Tokenizer> tokenizer_from_gguf(const formats::Gguf& g) {
  const std::string model = g.get_string("tokenizer.ggml.model");
  if (model == "none" || model == "no_vocab") {
    throw Error(g.source + ": the file has no vocabulary (tokenizer.ggml.model '" + model + "'); give token ids instead");
  }
  if (model != "gpt2") {
    throw Error(g.source + ": tokenizer.ggml.model '" + model + "' is not supported yet (supported: gpt2)");
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

}  // namespace tandem::engine
