// The tokenizer that belongs to a model path: a Hugging Face folder's
// tokenizer.json / tokenizer.model, or the vocabulary stored in a GGUF file's
// metadata (tokenizer.ggml.*). Lives in engine/ because it needs both formats/
// (GGUF) and tokenizer/, which must not depend on each other.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "formats/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tandem::engine {

std::unique_ptr<tokenizer::Tokenizer> load_model_tokenizer(const std::filesystem::path& model);

// From GGUF metadata. Supports tokenizer.ggml.model "gpt2" (byte-level BPE) with
// tokenizer.ggml.pre "default"/"gpt-2", "llama-bpe" and "qwen2", and "llama"
// (SentencePiece BPE: pieces, scores, types, run by the sentencepiece library);
// anything else is a tandem::Error naming the key and value.
std::unique_ptr<tokenizer::Tokenizer> tokenizer_from_gguf(const formats::Gguf& gguf);

// The chat template of a model path (tokenizer_config.json / chat_template.jinja
// of a folder, tokenizer.chat_template of a GGUF file), with the BOS/EOS token
// strings it may use; nullopt when the model has none.
std::optional<tokenizer::ChatTemplate> load_model_chat_template(const std::filesystem::path& model,
                                                                std::string* bos_token, std::string* eos_token);

}  // namespace tandem::engine
