// Hugging Face checkpoint folder -> llama.cpp GGUF file: the inverse of
// models/gguf_loader.cpp. Families: llama and mistral (GGUF arch "llama"; q/k
// rows permuted for ggml's interleaved-pair RoPE), qwen2 (arch "qwen2", q/k/v
// biases, unpermuted), qwen3 (arch "qwen3", q/k norms, unpermuted).
// Metadata uses llama.cpp's keys; a byte-level BPE tokenizer.json becomes a
// "gpt2" GGUF vocabulary. Tensors are converted/quantized and streamed to the
// file a chunk of rows at a time, so memory stays small whatever the model size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tensor/ggml_quant.h"

namespace tandem::models {

// --type of `tandem quantize`: the main weight type of the file.
enum class ExportType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ5_0, kQ4_K, kQ6_K };

// "f32", "q4_k", ... (case-insensitive; "q4_k_m" is accepted for q4_k). nullopt when unknown.
std::optional<ExportType> parse_export_type(const std::string& s);
std::string export_type_name(ExportType t);
std::string export_type_list();  // "f32, f16, bf16, q8_0, q4_0, q5_0, q4_k, q6_k"
// llama.cpp's general.file_type (LLAMA_FTYPE_*) for the type.
uint32_t export_file_type(ExportType t);

// What one tensor becomes. `name` is the GGUF tensor name, `ne` its ggml dims
// (ne[0] = row length), `block`/`n_blocks` the layer index and count (-1 for
// tensors outside blocks), `is_output_head` true for output.weight, and for
// token_embd.weight when the embedding is tied (it then serves as the head).
GgmlType recipe_tensor_type(ExportType t, const std::string& name, const std::vector<int64_t>& ne, int64_t block,
                            int64_t n_blocks, bool is_output_head);

struct ExportOptions {
  ExportType type = ExportType::kF16;
  std::string name;  // general.name; default: the folder's name
  int threads = 0;   // 0: all cores
};

struct ExportReport {
  std::string architecture;               // GGUF arch
  std::map<std::string, int> type_counts;  // ggml type name -> tensors
  int64_t params = 0;
  uint64_t file_bytes = 0;
  bool has_vocab = false;  // false: "none" tokenizer (no tokenizer.json, or not byte-level BPE)
  std::string vocab_note;  // why there is no vocabulary, or the pre-tokenizer name
};

// Writes `out` from the model folder `dir`. Throws tandem::Error naming the
// file, key or tensor on any problem (unsupported family or RoPE scaling,
// missing tensor, I/O failure); a failed export leaves no file at `out`.
ExportReport export_gguf(const std::filesystem::path& dir, const std::filesystem::path& out, const ExportOptions& opts);

}  // namespace tandem::models
