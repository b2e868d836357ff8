// Post-processors add the special tokens a model expects around an encoded sequence
// (Hugging Face `post_processor`), only when the caller asks for special tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tokenizer/json_node.h"

namespace tandem::tokenizer {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const JsonNode& node);

}  // namespace tandem::tokenizer
