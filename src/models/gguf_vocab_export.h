// The tokenizer part of the GGUF export: a Hugging Face byte-level BPE
// tokenizer.json (GPT-2, Llama 3, Qwen 2/3, SmolLM style) becomes llama.cpp's
// "gpt2" vocabulary metadata (tokenizer.ggml.*), which engine/model_tokenizer.cpp
// and llama.cpp both read back. Read as plain JSON: models/ does not depend on
// tokenizer/.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "formats/gguf_writer.h"
#include "formats/hf_config.h"

namespace tandem::models {

struct VocabExport {
  bool has_vocab = false;
  std::string note;  // the pre-tokenizer name written, or why there is no vocabulary
};

// llama.cpp's tokenizer.ggml.pre for a tokenizer.json pre_tokenizer: "llama-bpe" (the
// Llama 3 split regex), "qwen2" (Qwen's), "gpt-2" (plain ByteLevel with its built-in
// regex), else "default".
std::string gguf_pre_tokenizer_name(const nlohmann::json& pre_tokenizer);

// Adds tokenizer.ggml.* (and tokenizer.chat_template) for the folder `dir`.
// Without a usable tokenizer.json the file still gets tokenizer.ggml.model = "none",
// which llama.cpp accepts (it then needs {arch}.vocab_size, written by the caller) and
// which our loader accepts (the vocabulary size comes from token_embd), plus the
// bos/eos ids from config.json so generation still stops.
VocabExport add_gguf_vocab(formats::GgufWriter& w, const std::filesystem::path& dir, const formats::ModelConfig& c,
                           const formats::GenerationConfig& gen);

}  // namespace tandem::models
