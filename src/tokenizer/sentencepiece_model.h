// A SentencePiece `tokenizer.model` (Llama 2 and other checkpoints published without a
// tokenizer.json), run by the sentencepiece library itself so ids match it exactly rather than
// an approximation through a converted BPE. It is a whole tokenizer, not a pipeline stage:
// Tokenizer dispatches to it when loaded from a .model file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tandem::tokenizer {

class SentencePieceModel {
 public:
  // `serialized`: the bytes of a tokenizer.model (a ModelProto). Throws tandem::Error naming
  // `source_name` when they are not one.
  SentencePieceModel(std::string_view serialized, std::string source_name);
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  // add_special_tokens prepends BOS, as Hugging Face's LlamaTokenizer does by default.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Control tokens (<s>, </s>) decode to nothing in sentencepiece itself, so they vanish
  // whatever skip_special_tokens says; unknown tokens decode to " ⁇ " unless skipped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  int32_t vocab_size() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;

 private:
  std::string source_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace tandem::tokenizer
