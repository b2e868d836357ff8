#include "models/gguf_export.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/log.h"
#include "base/thread_pool.h"
#include "formats/gguf_writer.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "kernels/cpu/matmul.h"
#include "models/gguf_vocab_export.h"

namespace tandem::models {

namespace {

struct TypeName {
  ExportType type;
  const char* name;
  uint32_t file_type;  // llama.cpp LLAMA_FTYPE_*: ALL_F32 0, MOSTLY_F16 1, Q4_0 2, Q8_0 7, Q5_0 8,
                       // Q4_K_M 15, Q6_K 18, BF16 32
};
constexpr TypeName kTypeNames[] = {
    {ExportType::kF32, "f32", 0},   {ExportType::kF16, "f16", 1},   {ExportType::kBF16, "bf16", 32},
    {ExportType::kQ8_0, "q8_0", 7}, {ExportType::kQ4_0, "q4_0", 2}, {ExportType::kQ5_0, "q5_0", 8},
    {ExportType::kQ4_K, "q4_k", 15}, {ExportType::kQ6_K, "q6_k", 18},
};

// The quantization recipe, in the spirit of llama.cpp's mixes (Q4_K_M for q4_k):
//   main       every 2-D weight not named below
//   head       output.weight, or token_embd.weight when the embedding is tied (it is then the
//              output head too): errors there reach every logit directly, so it gets more bits
//   more_bits  attn_v and ffn_down in the layers use_more_bits() picks: llama.cpp's Q4_K_M
//              measured these as the most sensitive matrices
// The head of q4_0/q5_0 files is q6_K, as llama.cpp makes it. 1-D tensors (norms, biases, rope factors) are
// always f32. A row length the chosen block does not divide falls back (see fallback()).
struct Recipe {
  ExportType type;
  GgmlType main, head, more_bits;
};
constexpr Recipe kRecipes[] = {
    {ExportType::kF32, GgmlType::kF32, GgmlType::kF32, GgmlType::kF32},
    {ExportType::kF16, GgmlType::kF16, GgmlType::kF16, GgmlType::kF16},
    {ExportType::kBF16, GgmlType::kBF16, GgmlType::kBF16, GgmlType::kBF16},
    {ExportType::kQ8_0, GgmlType::kQ8_0, GgmlType::kQ8_0, GgmlType::kQ8_0},
    {ExportType::kQ4_0, GgmlType::kQ4_0, GgmlType::kQ6_K, GgmlType::kQ4_0},
    {ExportType::kQ5_0, GgmlType::kQ5_0, GgmlType::kQ6_K, GgmlType::kQ5_0},
    {ExportType::kQ4_K, GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ6_K},
    {ExportType::kQ6_K, GgmlType::kQ6_K, GgmlType::kQ6_K, GgmlType::kQ6_K},
};

// llama.cpp's choice of layers that get more bits: the first and last eighth, and every
// third layer in between.
bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// K-quant blocks are 256 wide; a row they do not divide falls back as llama.cpp does
// (q4_K -> q5_0, q6_K -> q8_0); 32-wide blocks that do not fit fall back to f16.
GgmlType fallback(GgmlType t, int64_t ne0) {
  for (;;) {
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(t));
    if (ne0 % info->block_size == 0) return t;
    switch (t) {
      case GgmlType::kQ4_K: t = GgmlType::kQ5_0; break;
      case GgmlType::kQ6_K: t = GgmlType::kQ8_0; break;
      default: t = GgmlType::kF16; break;
    }
  }
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// One tensor of the output file.
struct Planned {
  std::string gguf_name;
  std::string hf_name;             // empty for synthesized tensors
  std::vector<int64_t> ne;         // ggml order
  GgmlType type = GgmlType::kF32;
  int64_t permute_heads = 0;       // >0: llama q/k row permutation with this many heads
  std::vector<float> synthesized;  // data of a tensor not in the checkpoint (rope_freqs)
};

// llama.cpp's rope_freqs for rope_type llama3: per frequency, the factor its RoPE divides the
// base frequency by (1 for high frequencies, `factor` for low ones, smooth in between).
std::vector<float> llama3_rope_factors(const formats::RopeParams& p, int64_t rot_dim) {
  const double old_ctx = static_cast<double>(p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : 8192);
  const double low_wavelen = old_ctx / p.low_freq_factor, high_wavelen = old_ctx / p.high_freq_factor;
  std::vector<float> f(static_cast<size_t>(rot_dim / 2));
  for (int64_t i = 0; i < rot_dim / 2; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(rot_dim);
    const float freq = static_cast<float>(1.0 / std::pow(p.theta, static_cast<double>(expo)));
    const double wavelen = 2.0 * M_PI / freq;
    double v;
    if (wavelen < high_wavelen) {
      v = 1.0;
    } else if (wavelen > low_wavelen) {
      v = p.factor;
    } else {
      const double smooth = (old_ctx / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
      v = 1.0 / ((1.0 - smooth) / p.factor + smooth);
    }
    f[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return f;
}

// Streams one tensor: converts rows to float32 (applying the q/k permutation), quantizes
// them and writes them, a bounded chunk at a time.
void stream_tensor(const Planned& t, const formats::Checkpoint& ckpt, int64_t head_dim, formats::GgufWriter& w,
                   ThreadPool& pool) {
  const int64_t cols = t.ne[0];
  int64_t rows = 1;
  for (size_t k = 1; k < t.ne.size(); ++k) rows *= t.ne[k];
  const size_t row_bytes = ggml_row_size(t.type, cols);
  TensorView src;
  if (t.hf_name.empty()) {
    src = TensorView{DType::kF32, {rows, cols}, t.synthesized.data()};
  } else {
    src = ckpt.get(t.hf_name);
  }
  const size_t src_row_bytes = static_cast<size_t>(cols) * dtype_size(src.dtype);
  const auto* src_bytes = static_cast<const uint8_t*>(src.data);
  // About 8 MiB of float32 per chunk; each output row picks its source row, so the
  // permutation needs no chunk alignment.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{2} << 20) / std::max<int64_t>(cols, 1));
  std::vector<float> f32(static_cast<size_t>(std::min(chunk, rows) * cols));
  std::vector<uint8_t> q(static_cast<size_t>(std::min(chunk, rows)) * row_bytes);
  const int64_t half = head_dim / 2;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    pool.parallel_for(
        n,
        [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            int64_t out_row = r0 + r, in_row = out_row;
            if (t.permute_heads > 0) {
              // GGUF row h*D + 2j + i holds HF row h*D + i*D/2 + j (the loader's inverse).
              const int64_t h = out_row / head_dim, within = out_row % head_dim;
              in_row = h * head_dim + (within % 2) * half + within / 2;
            }
            float* dst = f32.data() + r * cols;
            kernels::to_f32(src_bytes + static_cast<size_t>(in_row) * src_row_bytes, src.dtype, cols, dst);
            quantize_row(t.type, dst, q.data() + static_cast<size_t>(r) * row_bytes, cols);
          }
        },
        std::max<int64_t>(1, 4096 / std::max<int64_t>(cols / 256, 1)));
    w.write_tensor_data(q.data(), static_cast<uint64_t>(n) * row_bytes);
  }
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t k = 0; k < s.size(); ++k) r += (k ? ", " : "") + std::to_string(s[k]);
  return r + "]";
}

}  // namespace

std::optional<ExportType> parse_export_type(const std::string& s) {
  std::string l;
  for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "q4_k_m") l = "q4_k";
  for (const auto& t : kTypeNames) {
    if (l == t.name) return t.type;
  }
  return std::nullopt;
}

std::string export_type_name(ExportType t) {
  for (const auto& n : kTypeNames) {
    if (n.type == t) return n.name;
  }
  return "?";
}

std::string export_type_list() {
  std::string s;
  for (const auto& n : kTypeNames) s += (s.empty() ? "" : ", ") + std::string(n.name);
  return s;
}

uint32_t export_file_type(ExportType t) {
  for (const auto& n : kTypeNames) {
    if (n.type == t) return n.file_type;
  }
  return 0;
}

GgmlType recipe_tensor_type(ExportType t, const std::string& name, const std::vector<int64_t>& ne, int64_t block,
                            int64_t n_blocks, bool is_output_head) {
  if (ne.size() < 2) return GgmlType::kF32;
  const Recipe* r = &kRecipes[0];
  for (const auto& x : kRecipes) {
    if (x.type == t) r = &x;
  }
  GgmlType type = r->main;
  if (is_output_head) {
    type = r->head;
  } else if (block >= 0 && (ends_with(name, "attn_v.weight") || ends_with(name, "ffn_down.weight")) &&
             use_more_bits(block, n_blocks)) {
    type = r->more_bits;
  }
  return fallback(type, ne[0]);
}

ExportReport export_gguf(const std::filesystem::path& dir, const std::filesystem::path& out, const ExportOptions& opts) {
  if (!std::filesystem::is_directory(dir)) throw Error(dir.string() + ": not a model folder (no such directory)");
  const formats::ModelConfig c = formats::load_model_config(dir / "config.json");
  const formats::GenerationConfig gen = formats::load_generation_config(dir / "generation_config.json");
  const std::string src = (dir / "config.json").string();

  std::string arch;
  if (c.model_type == "llama" || c.model_type == "mistral") {
    arch = "llama";
  } else if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    arch = c.model_type;
  } else {
    throw Error(src + ": model_type '" + c.model_type + "' cannot be exported to GGUF yet (supported: llama, mistral, qwen2, qwen3)");
  }
  if (c.hidden_act != "silu") throw Error(src + ": hidden_act '" + c.hidden_act + "' is not supported by the GGUF export");
  if (c.mlp_bias) throw Error(src + ": mlp_bias is not supported by the GGUF export");
  if (c.attention_bias && arch != "qwen2") {
    throw Error(src + ": attention_bias is only supported for qwen2 by the GGUF export");
  }
  for (auto t : c.layer_types) {
    if (t == formats::LayerType::kSliding) {
      // llama.cpp's llama architecture has no sliding window either (it runs Mistral with
      // full attention); output matches the checkpoint only within the window.
      log::warn(src + ": sliding-window attention is not representable in GGUF arch '" + arch +
                "'; the file attends to the full context");
      break;
    }
  }
  const formats::RopeParams& rope = c.rope.at(formats::LayerType::kFull);
  const int64_t H = c.hidden_size, D = c.head_dim, Nq = c.num_attention_heads, Nkv = c.num_key_value_heads,
                F = c.intermediate_size, V = c.vocab_size, L = c.num_hidden_layers;
  int64_t rot_dim = static_cast<int64_t>(static_cast<double>(D) * rope.partial_rotary_factor);
  rot_dim -= rot_dim % 2;

  formats::GgufWriter w;
  const std::string p = arch + ".";
  w.add_string("general.architecture", arch);
  std::filesystem::path norm = std::filesystem::absolute(dir).lexically_normal();
  if (norm.filename().empty()) norm = norm.parent_path();  // "models/demo/"
  w.add_string("general.name", opts.name.empty() ? norm.filename().string() : opts.name);
  w.add_u32("general.file_type", export_file_type(opts.type));
  w.add_u32("general.quantization_version", 2);  // ggml's QK format revision (GGML_QNT_VERSION)
  w.add_u32(p + "vocab_size", static_cast<uint32_t>(V));
  w.add_u32(p + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.add_u32(p + "embedding_length", static_cast<uint32_t>(H));
  w.add_u32(p + "block_count", static_cast<uint32_t>(L));
  w.add_u32(p + "feed_forward_length", static_cast<uint32_t>(F));
  w.add_u32(p + "attention.head_count", static_cast<uint32_t>(Nq));
  w.add_u32(p + "attention.head_count_kv", static_cast<uint32_t>(Nkv));
  w.add_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_f32(p + "rope.freq_base", static_cast<float>(rope.theta));
  w.add_u32(p + "rope.dimension_count", static_cast<uint32_t>(rot_dim));
  if (D * Nq != H) {
    w.add_u32(p + "attention.key_length", static_cast<uint32_t>(D));
    w.add_u32(p + "attention.value_length", static_cast<uint32_t>(D));
  }
  bool rope_factors = false;
  if (rope.type == "linear") {
    w.add_string(p + "rope.scaling.type", "linear");
    w.add_f32(p + "rope.scaling.factor", static_cast<float>(rope.factor));
  } else if (rope.type == "llama3") {
    rope_factors = true;  // llama.cpp stores these as the tensor rope_freqs.weight
  } else if (rope.type != "default") {
    throw Error(src + ": rope_type '" + rope.type + "' cannot be exported to GGUF yet (supported: default, linear, llama3)");
  }

  ExportReport report;
  report.architecture = arch;
  const VocabExport vocab = add_gguf_vocab(w, dir, c, gen);
  report.has_vocab = vocab.has_vocab;
  report.vocab_note = vocab.note;

  // ---- tensors, in llama.cpp's order ----
  auto ckpt = formats::Checkpoint::open(dir);
  std::vector<Planned> plan;
  auto add = [&](const std::string& gname, const std::string& hf, std::vector<int64_t> shape, int64_t block,
                 bool head, int64_t permute_heads = 0) {
    if (!ckpt->has(hf)) throw Error(dir.string() + ": tensor '" + hf + "' not found (needed for GGUF '" + gname + "')");
    const auto& e = ckpt->entry(hf);
    if (e.shape != shape) {
      throw Error(ckpt->file_of(hf) + ": tensor '" + hf + "' has shape " + shape_text(e.shape) + ", config.json implies " +
                  shape_text(shape));
    }
    Planned t;
    t.gguf_name = gname;
    t.hf_name = hf;
    t.ne.assign(shape.rbegin(), shape.rend());
    t.type = recipe_tensor_type(opts.type, gname, t.ne, block, L, head);
    t.permute_heads = permute_heads;
    plan.push_back(std::move(t));
  };
  if (rope_factors) {
    Planned t;
    t.gguf_name = "rope_freqs.weight";
    t.synthesized = llama3_rope_factors(rope, rot_dim);
    t.ne = {static_cast<int64_t>(t.synthesized.size())};
    plan.push_back(std::move(t));
  }
  add("token_embd.weight", "model.embed_tokens.weight", {V, H}, -1, c.tie_word_embeddings);
  const bool permute = arch == "llama";
  for (int64_t i = 0; i < L; ++i) {
    const std::string g = "blk." + std::to_string(i) + ".";
    const std::string h = "model.layers." + std::to_string(i) + ".";
    add(g + "attn_norm.weight", h + "input_layernorm.weight", {H}, i, false);
    add(g + "attn_q.weight", h + "self_attn.q_proj.weight", {Nq * D, H}, i, false, permute ? Nq : 0);
    add(g + "attn_k.weight", h + "self_attn.k_proj.weight", {Nkv * D, H}, i, false, permute ? Nkv : 0);
    add(g + "attn_v.weight", h + "self_attn.v_proj.weight", {Nkv * D, H}, i, false);
    if (arch == "qwen2") {  // the family always has q/k/v biases (config.json rarely says so)
      add(g + "attn_q.bias", h + "self_attn.q_proj.bias", {Nq * D}, i, false);
      add(g + "attn_k.bias", h + "self_attn.k_proj.bias", {Nkv * D}, i, false);
      add(g + "attn_v.bias", h + "self_attn.v_proj.bias", {Nkv * D}, i, false);
    }
    if (arch == "qwen3") {
      add(g + "attn_q_norm.weight", h + "self_attn.q_norm.weight", {D}, i, false);
      add(g + "attn_k_norm.weight", h + "self_attn.k_norm.weight", {D}, i, false);
    }
    add(g + "attn_output.weight", h + "self_attn.o_proj.weight", {H, Nq * D}, i, false);
    add(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", {H}, i, false);
    add(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", {F, H}, i, false);
    add(g + "ffn_up.weight", h + "mlp.up_proj.weight", {F, H}, i, false);
    add(g + "ffn_down.weight", h + "mlp.down_proj.weight", {H, F}, i, false);
  }
  add("output_norm.weight", "model.norm.weight", {H}, -1, false);
  if (!c.tie_word_embeddings) add("output.weight", "lm_head.weight", {V, H}, -1, true);

  for (const auto& t : plan) {
    w.add_tensor(t.gguf_name, t.ne, t.type);
    ++report.type_counts[std::string(ggml_type_info(static_cast<uint32_t>(t.type))->name)];
    if (!t.hf_name.empty()) {
      int64_t n = 1;
      for (int64_t d : t.ne) n *= d;
      report.params += n;
    }
  }
  // Fail before writing anything when a chosen type has no quantizer in this build.
  for (const auto& [name, n] : report.type_counts) {
    (void)n;
    for (const auto& t : plan) {
      const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(t.type));
      if (info->name != name) continue;
      std::vector<float> zeros(static_cast<size_t>(info->block_size), 0.0f);
      std::vector<uint8_t> block(info->type_size);
      try {
        quantize_row(t.type, zeros.data(), block.data(), info->block_size);
      } catch (const Error& e) {
        throw Error("--type " + export_type_name(opts.type) + " needs " + name + " (for '" + t.gguf_name +
                    "' and others), which this build cannot write: " + e.what());
      }
      break;
    }
  }
  ThreadPool pool(opts.threads);
  w.begin(out);
  for (const auto& t : plan) {
    log::debug("gguf export: " + t.gguf_name + " " + shape_text(t.ne) + " " +
               std::string(ggml_type_info(static_cast<uint32_t>(t.type))->name));
    try {
      stream_tensor(t, *ckpt, D, w, pool);
    } catch (const Error& e) {
      throw Error(out.string() + ": tensor '" + t.gguf_name + "': " + e.what());
    }
  }
  w.finish();
  report.file_bytes = w.bytes_written();
  return report;
}

}  // namespace tandem::models
