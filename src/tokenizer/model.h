// Models turn one pre-tokenized piece into token ids (Hugging Face `model`) and own the base
// vocabulary. Added tokens live beside the model, in AddedVocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_node.h"

namespace tandem::tokenizer {

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of `piece`. Thread-safe: several requests encode concurrently.
  virtual void tokenize(std::string_view piece, std::vector<int32_t>& ids) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // nullptr when no token has this id.
  virtual const std::string* id_to_token(int32_t id) const = 0;
  // Largest id in the vocabulary, or -1 when it is empty.
  virtual int32_t max_id() const = 0;
  // Number of distinct tokens (Hugging Face's get_vocab_size, which places new added tokens).
  virtual size_t size() const = 0;
};

std::unique_ptr<Model> make_model(const JsonNode& node);

}  // namespace tandem::tokenizer
