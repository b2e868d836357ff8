// Normalizers rewrite plain text before pre-tokenization (Hugging Face `normalizer`). Offsets
// are not tracked: the engine needs ids, not alignments.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/json_node.h"

namespace tandem::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string_view text) const = 0;
};

// Builds the normalizer described by `node` (an object with "type"); throws tandem::Error
// naming the field for unknown types or bad fields.
std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node);

}  // namespace tandem::tokenizer
