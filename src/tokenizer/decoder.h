// Decoders turn token strings back into text (Hugging Face `decoder`). Like Hugging Face, each
// one rewrites the list of token strings and the results are concatenated at the end.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_node.h"

namespace tandem::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const JsonNode& node);

}  // namespace tandem::tokenizer
