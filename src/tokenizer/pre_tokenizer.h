// Pre-tokenizers cut normalized text into the pieces the model tokenizes independently
// (Hugging Face `pre_tokenizer`), and may rewrite them (ByteLevel maps bytes to its alphabet).
#pragma once

#include <memory>
#include <string_view>

#include "tokenizer/function_ref.h"
#include "tokenizer/json_node.h"

namespace tandem::tokenizer {

// Receives each piece in order; the view is valid only during the call.
using PieceSink = FunctionRef<void(std::string_view)>;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Emits the pieces `text` splits into, in order, never an empty one. Hugging Face applies
  // each stage to every piece before the next stage; every stage works on one piece at a time,
  // so streaming pieces depth-first gives the same result without materializing lists.
  // `at_start`: whether `text` begins at offset 0 of the input, which Metaspace's "first"
  // prepend scheme depends on (Hugging Face checks the piece's original offset).
  virtual void pre_tokenize(std::string_view text, bool at_start, PieceSink sink) const = 0;
  void pre_tokenize(std::string_view text, PieceSink sink) const {
    pre_tokenize(text, true, sink);
  }
};

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node);

}  // namespace tandem::tokenizer
