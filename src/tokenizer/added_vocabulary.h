// Added tokens (tokenizer.json `added_tokens`): special and user tokens that are cut out of the
// text before the model runs, with Hugging Face's matching rules (leftmost-longest, single_word,
// lstrip/rstrip, normalized vs raw matching).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/function_ref.h"
#include "tokenizer/regex.h"
#include "tokenizer/string_map.h"

namespace tandem::tokenizer {

class Model;
class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;  // Hugging Face's default when the field is absent
  bool special = false;
};

class AddedVocabulary {
 public:
  // Assigns ids the way Hugging Face's add_tokens does (the model's id when the content is in
  // the model vocabulary, else the next free id; the ids written in tokenizer.json only agree
  // with that in well-formed files). `normalizer` may be null; it normalizes the content of
  // `normalized` tokens for matching.
  AddedVocabulary(const std::vector<AddedToken>& tokens, const Model& model,
                  const Normalizer* normalizer);
  ~AddedVocabulary();

  // Receives, in order, a run of normalized text for the pre-tokenizer (id < 0; the view is
  // valid only during the call) or one added token (id >= 0, text empty).
  using SegmentSink = FunctionRef<void(std::string_view text, int32_t id)>;

  // Hugging Face's extract_and_normalize: cut raw-matched tokens from `text`, normalize the
  // rest, then cut normalized-matched tokens. Empty text runs are dropped.
  void split(std::string_view text, const Normalizer* normalizer, SegmentSink sink) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  const std::string* id_to_token(int32_t id) const;
  // Whether `content` is the content of a special token (how Hugging Face decides what
  // skip_special_tokens removes).
  bool is_special_content(std::string_view content) const;
  int32_t max_id() const { return max_id_; }
  bool empty() const { return by_id_.empty(); }

 private:
  class Trie;
  struct Match {
    size_t begin, end;
    int32_t id;
  };
  void find_matches(std::string_view text, const Trie& trie, std::vector<Match>& out) const;
  bool is_word_char_before(std::string_view text, size_t end) const;
  bool is_word_char_at(std::string_view text, size_t pos) const;

  std::unordered_map<int32_t, AddedToken> by_id_;
  StringMap<int32_t> by_content_;
  StringMap<bool> special_contents_;
  std::unique_ptr<Trie> raw_trie_;
  std::unique_ptr<Trie> normalized_trie_;
  std::optional<Regex> word_char_;  // Rust regex `\w`, compiled only if a token needs it
  int32_t max_id_ = -1;
};

}  // namespace tandem::tokenizer
