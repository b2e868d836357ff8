// A loaded decoder-only model: configuration, architecture description and
// weights. Immutable after load, so one Model can serve many sequences and
// engines at once; everything that changes per request (KV cache, scratch
// buffers) lives outside it and is passed in.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/host_buffer.h"
#include "base/thread_pool.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "kernels/cpu/matmul.h"
#include "models/arch.h"
#include "models/kv_cache.h"
#include "models/quant_recipe.h"
#include "models/rope.h"
#include "tensor/tensor.h"

namespace tandem::models {

struct LoadOptions {
  // Convert every weight to float32 at load (more memory; the reference path).
  // Otherwise matrices stay in their stored dtype and are converted in registers.
  bool convert_to_f32 = false;
  // Use matrices in place from the file mapping instead of copying them into
  // (huge-page) memory at load. Saves the copy and the load time, but decode
  // streams weights about 3x slower from 4 KiB page-cache pages.
  bool use_mmap = false;
  // transformers keeps RoPE's inv_freq and Gemma's embedding scale as module
  // buffers, which a model loaded in its checkpoint dtype (bf16/f16) rounds to
  // that dtype. We round them the same way for parity unless this is set (then
  // they stay float32, as llama.cpp keeps them).
  bool exact_buffers = false;
  // Quantize (or convert) the matrices at load following models/quant_recipe.h,
  // e.g. kQ4_K for llama.cpp's Q4_K_M-like mix. Applies to GGUF files too.
  std::optional<DType> quantize;
  // Interleave Q8_0 matrices by 16 rows for the AVX-512 VNNI kernels
  // (kernels/cpu/repack.h) when that is the active ISA. Same bytes; applies to
  // copies made at load and GGUF tensors, never to a safetensors file mapping
  // used in place (use_mmap).
  bool repack = true;
  // BF16 matrices on AVX512_BF16 CPUs: true rounds the activations once to
  // bf16 (as transformers computes a model loaded in bfloat16, and as llama.cpp
  // does); false splits them into two bf16 halves (float32 parity, logits within
  // 1e-5 of transformers in float32, at twice the dot products). Unset: each
  // format's reference numerics -- a Hugging Face folder keeps float32 parity
  // (transformers' default dtype), a GGUF file rounds as llama.cpp, the
  // reference implementation of that format, does (prefill ~1.6x faster).
  // Model::bf16_activations() says which was chosen. (kernels/cpu/matmul.h)
  std::optional<bool> bf16_activations;
  // Join q/k/v and gate/up into one matrix each at load when they share a
  // dtype and are copies (not a file mapping): fewer, longer matmuls per
  // decode step. Off only for A/B measurements (TANDEM_NO_JOIN=1 as well).
  bool join_matrices = true;
};

// One transformer block's weights. Matrices are views into the mapped file (or
// into owned f32 copies); vectors are float32 copies. Shapes in comments use
// H = hidden_size, D = head_dim, Nq/Nkv = query/key-value heads, F = intermediate.
struct LayerWeights {
  formats::LayerType type = formats::LayerType::kFull;
  std::vector<float> attn_norm;      // [H] input_layernorm
  TensorView wq, wk, wv;             // [Nq*D, H], [Nkv*D, H], [Nkv*D, H]
  TensorView wqkv;                   // [(Nq+2*Nkv)*D, H] when fused (Phi-3, or joined at load)
  TensorView wqk;                    // [(Nq+Nkv)*D, H]: q and k joined at load when v has another dtype
  std::vector<float> bq, bk, bv;     // biases (Qwen2), same rows
  std::vector<float> q_norm, k_norm; // [D] (Qwen3, Gemma3)
  TensorView wo;                     // [H, Nq*D]
  std::vector<float> bo;             // [H]
  std::vector<float> post_attn_norm; // [H] Gemma sandwich: applied to the attention output
  std::vector<float> ffn_norm;       // [H] pre-MLP norm
  std::vector<float> post_ffn_norm;  // [H] Gemma sandwich: applied to the MLP output
  TensorView w_gate, w_up;           // [F, H] each
  TensorView w_gate_up;              // [2*F, H] when fused (Phi-3, or joined at load)
  TensorView w_down;                 // [H, F]
  std::vector<float> b_gate, b_up, b_down;
};

// One sequence's part of a forward batch. Its tokens are appended to its
// cache at positions cache->length() onwards.
struct SeqInput {
  std::span<const int32_t> tokens;
  KvCache* cache = nullptr;
  bool all_logits = false;  // logits for every token, else only the last
  float* logits = nullptr;  // [all_logits ? tokens.size() : 1, vocab]; may be null
  float* hidden = nullptr;  // [tokens.size(), hidden_size] final-normed hidden states; may be null
};

// Where forward()'s time goes, per kind of operation (`tandem bench
// --profile`). Each mark attributes the time since the previous one, so the
// parts add up to the whole step; the matrices' bytes give each matmul's
// streaming rate. Costs two clock reads per operation when attached.
struct StepProfile {
  enum Op { kEmbed, kNorm, kQkv, kRope, kAttention, kOut, kGateUp, kAct, kDown, kHead, kOther, kCount };
  static const char* name(int op);
  double seconds[kCount] = {};
  uint64_t bytes[kCount] = {};  // matrix bytes read
  int64_t steps = 0;            // forward() calls profiled
};

// Scratch memory for forward(); reused across calls, one per caller thread.
struct Workspace {
  StepProfile* profile = nullptr;  // when set, forward() adds its time here
  std::vector<float> x, xb, xb2, q, k, v, qkv, att, gate, up, hidden, logits;
  std::vector<float> rope_cos, rope_sin;  // [layer type][token][rot/2]
  std::vector<const float*> k_blocks, v_blocks;  // every sequence's block table for one layer, back to back
};

struct ModelInfo {
  std::string family;
  std::string model_type;
  int64_t params = 0;
  uint64_t weight_bytes = 0;  // as held in memory
  std::string weight_dtypes;  // e.g. "BF16", or "Q4_K+Q6_K" for a mix
  uint64_t matrix_bytes = 0;      // the matrices (what decode streams per token)
  uint64_t decode_bytes = 0;      // bytes read per decoded token: matrices + one embedding row + vectors
};

class Model {
 public:
  // Loads config.json, generation_config.json and the safetensors weights of a
  // Hugging Face model folder. Throws tandem::Error naming the file, tensor or
  // field on any problem.
  // A path ending in ".gguf" that is not a folder goes to load_gguf() instead.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, const LoadOptions& opts = {});
  // Loads a llama.cpp GGUF file (models/gguf_loader.h): every tensor is
  // dequantized to float32 at load.
  static std::unique_ptr<Model> load_gguf(const std::filesystem::path& path, const LoadOptions& opts = {});

  const formats::ModelConfig& config() const { return cfg_; }
  const formats::GenerationConfig& generation_config() const { return gen_cfg_; }
  const ArchSpec& arch() const { return arch_; }
  const std::filesystem::path& dir() const { return dir_; }
  int64_t vocab_size() const { return cfg_.vocab_size; }
  // Whether BF16 matrices round the activations to bf16 (LoadOptions::bf16_activations, resolved).
  bool bf16_activations() const { return bf16_acts_ == kernels::Bf16Activations::kRound; }
  // Whether any weight matrix is used in dtype t (after --quantize and repacking, unpacked name).
  bool has_matrices(DType t) const { return matrix_bytes_by_type_.count(std::string(dtype_name(t))) > 0; }
  ModelInfo info() const;
  // End-of-sequence ids from generation_config.json and config.json.
  std::vector<int32_t> eos_token_ids() const;

  KvCache new_cache(int64_t max_tokens = 0) const;  // 0: max_position_embeddings

  // Runs a batch of sequences. Throws tandem::Error on ids outside the
  // vocabulary or a context overflow, leaving every cache as it was.
  void forward(std::span<const SeqInput> batch, Workspace& ws, ThreadPool& pool) const;

 private:
  Model() = default;
  void load_weights(const LoadOptions& opts);
  TensorView matrix(const std::string& name, std::vector<int64_t> shape, const LoadOptions& opts,
                    WeightRole role = WeightRole::kLinear);
  std::vector<float> vector(const std::string& name, int64_t n);
  // Joins matrices of one dtype and width, each in a buffer of its own in
  // owned_, into one (their rows concatenated), and points the parts into it.
  // Returns an empty view (data null) when they cannot be joined.
  TensorView join_rows(std::initializer_list<TensorView*> parts);
  void embed(std::span<const SeqInput> batch, float* x) const;
  // A weight from the checkpoint, or from prepared_ when there is none (GGUF);
  // `file` receives the file it came from, for messages.
  TensorView lookup(const std::string& name, std::string& file) const;
  bool has_tensor(const std::string& name) const;
  // RoPE tables and the embedding scale, with transformers' buffer rounding.
  void build_buffers(const LoadOptions& opts);

  std::filesystem::path dir_;
  formats::ModelConfig cfg_;
  formats::GenerationConfig gen_cfg_;
  ArchSpec arch_;
  std::unique_ptr<formats::Checkpoint> ckpt_;
  std::map<std::string, TensorView> prepared_;  // GGUF: f32 weights in owned_, by HF name
  std::string stored_types_;                    // GGUF: ggml types of the file, for info()
  std::vector<HostBuffer> owned_;  // weight copies (unless use_mmap), f32 when converting
  std::unique_ptr<ThreadPool> load_pool_;  // quantizes at load; released after
  std::map<std::string, uint64_t> matrix_bytes_by_type_;
  uint64_t weight_bytes_ = 0;
  int64_t params_ = 0;

  TensorView embed_;                 // [V, H]
  std::vector<LayerWeights> layers_;
  std::vector<float> final_norm_;    // [H]
  TensorView lm_head_;               // [V, H] (the embedding when tied)
  std::vector<Rope> ropes_;          // index: LayerType
  float embed_scale_ = 1.0f;         // Gemma: sqrt(H), rounded like transformers' buffer
  kernels::Bf16Activations bf16_acts_ = kernels::Bf16Activations::kSplit;  // LoadOptions::bf16_activations (resolved)
  bool any_wqkv_ = false, any_w_gate_up_ = false;  // some layer has a joined matrix (forward sizes ws for it)
};

}  // namespace tandem::models
