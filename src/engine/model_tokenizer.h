// The tokenizer that belongs to a model path: a Hugging Face folder's
// tokenizer.json / tokenizer.model, or the vocabulary stored in a GGUF file's
// metadata (tokenizer.ggml.*). Lives in engine/ because it needs both formats/
// (GGUF) and tokenizer/, which must not depend on each other.
#pragma once

#include <filesystem>
#include <memory>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace tandem::engine {

std::unique_ptr<tokenizer::Tokenizer> load_model_tokenizer(const std::filesystem::path& model);

// From GGUF metadata. Supports tokenizer.ggml.model "gpt2" (byte-level BPE) with
// tokenizer.ggml.pre "default"/"gpt-2", "llama-bpe" and "qwen2"; anything else is a
// tandem::Error naming the key and value.
std::unique_ptr<tokenizer::Tokenizer> tokenizer_from_gguf(const formats::Gguf& gguf);

}  // namespace tandem::engine
