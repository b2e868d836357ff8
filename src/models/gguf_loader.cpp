#include "models/gguf_loader.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "base/error.h"
#include "kernels/cpu/matmul.h"
#include "tensor/ggml_quant.h"

namespace tandem::models {

namespace {

// GGUF architectures whose tensors and hyperparameters map 1:1 onto a family
// of the shared decoder.
bool supported_arch(const std::string& arch) { return arch == "llama" || arch == "qwen2" || arch == "qwen3"; }

// Dequantizes one tensor to float32 rows [numel / ne0, ne0].
HostBuffer dequantize(const formats::GgufFile& f, const formats::GgufTensorInfo& ti) {
  const GgmlTypeInfo* info = ggml_type_info(ti.type);
  // parse_gguf rejected unknown type ids, so info is non-null.
  if (info == nullptr || !info->can_dequantize) {
    throw Error(f.path().string() + ": tensor '" + ti.name + "' has ggml type " +
                (info ? std::string(info->name) : std::string("?")) + " (" + std::to_string(ti.type) +
                "), which cannot be dequantized yet");
  }
  const formats::GgufTensorData d = f.view(ti);
  const int64_t n = ti.numel();
  HostBuffer buf(static_cast<size_t>(n) * sizeof(float));
  float* dst = reinterpret_cast<float*>(buf.data());
  const auto type = static_cast<GgmlType>(ti.type);
  // Plain float types go through the decoder's own converters.
  if (type == GgmlType::kF32) {
    std::memcpy(dst, d.data, static_cast<size_t>(n) * sizeof(float));
  } else if (type == GgmlType::kF16) {
    kernels::to_f32(d.data, DType::kF16, n, dst);
  } else if (type == GgmlType::kBF16) {
    kernels::to_f32(d.data, DType::kBF16, n, dst);
  } else {
    const int64_t ne0 = ti.ne[0];
    const size_t row_bytes = ggml_row_size(type, ne0);
    const int64_t rows = ne0 == 0 ? 0 : n / ne0;
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(type, d.data + static_cast<size_t>(r) * row_bytes, dst + r * ne0, ne0);
    }
  }
  return buf;
}

// llama.cpp's converter permutes the rows of q and k for arch llama so that
// ggml's RoPE, which rotates adjacent pairs (x[2j], x[2j+1]), matches the
// Hugging Face weights. Our decoder rotates halves (x[j], x[j + D/2]) like
// transformers, so put each head's rows back: the converter stores HF row
// h*D + i*D/2 + j at h*D + 2j + i (reshape(n_head, 2, D/2, in).swapaxes(1, 2)).
// Rows are moved whole, so this works for any row format.
void unpermute_rope_rows(uint8_t* w, int64_t n_head, int64_t head_dim, size_t row_bytes) {
  const int64_t half = head_dim / 2;
  std::vector<uint8_t> head(static_cast<size_t>(head_dim) * row_bytes);
  for (int64_t h = 0; h < n_head; ++h) {
    uint8_t* base = w + static_cast<size_t>(h * head_dim) * row_bytes;
    std::memcpy(head.data(), base, head.size());
    for (int64_t j = 0; j < half; ++j) {
      for (int64_t i = 0; i < 2; ++i) {
        std::memcpy(base + static_cast<size_t>(i * half + j) * row_bytes,
                    head.data() + static_cast<size_t>(2 * j + i) * row_bytes, row_bytes);
      }
    }
  }
}

std::string shape_of(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
  return s + "]";
}

class Loader {
 public:
  Loader(const formats::GgufFile& f, GgufModelWeights& out, bool dequantize_all)
      : f_(f), out_(out), dequantize_all_(dequantize_all) {}

  // Adds GGUF tensor `gname` as HF tensor `hf_name` with row-major shape
  // `shape` (GGUF stores it reversed). Returns the tensor's rows.
  uint8_t* add(const std::string& gname, const std::string& hf_name, const std::vector<int64_t>& shape) {
    const formats::GgufTensorInfo* ti = f_.gguf().find_tensor(gname);
    if (ti == nullptr) throw Error(f_.path().string() + ": tensor '" + gname + "' not found");
    std::vector<int64_t> ne(shape.rbegin(), shape.rend());
    if (ti->ne != ne) {
      throw Error(f_.path().string() + ": tensor '" + gname + "' has dims " + shape_of(ti->ne) +
                  " but the metadata implies " + shape_of(ne));
    }
    const std::optional<DType> native = dtype_from_ggml(static_cast<GgmlType>(ti->type));
    uint8_t* data;
    if (shape.size() == 2 && native && !dequantize_all_) {
      const formats::GgufTensorData d = f_.view(*ti);
      TensorView t{*native, shape, nullptr};
      HostBuffer buf(t.nbytes());
      std::memcpy(buf.data(), d.data, t.nbytes());
      data = buf.data();
      t.data = data;
      out_.tensors[hf_name] = t;
      out_.buffers.push_back(std::move(buf));
    } else {
      HostBuffer buf = dequantize(f_, *ti);
      data = buf.data();
      out_.tensors[hf_name] = TensorView{DType::kF32, shape, data};
      out_.buffers.push_back(std::move(buf));
    }
    out_.params += ti->numel();
    types_.insert(std::string(ggml_type_info(ti->type)->name));
    return data;
  }
  bool has(const std::string& gname) const { return f_.gguf().find_tensor(gname) != nullptr; }
  std::string types() const {
    std::string s;
    for (const auto& t : types_) s += (s.empty() ? "" : "+") + t;
    return s;
  }

 private:
  const formats::GgufFile& f_;
  GgufModelWeights& out_;
  bool dequantize_all_;
  std::set<std::string> types_;
};

}  // namespace

formats::ModelConfig gguf_model_config(const formats::Gguf& g) {
  const std::string arch = g.get_string("general.architecture");
  if (!supported_arch(arch)) {
    throw Error(g.source + ": unsupported architecture '" + arch + "' (supported: llama, qwen2, qwen3)");
  }
  const std::string p = arch + ".";
  // Build the config.json llama.cpp's converter read, so the same parser
  // validates it and the family fills in its defaults exactly as for HF folders.
  nlohmann::json j;
  j["model_type"] = arch;
  j["hidden_size"] = g.get_int(p + "embedding_length");
  j["intermediate_size"] = g.get_int(p + "feed_forward_length");
  j["num_hidden_layers"] = g.get_int(p + "block_count");
  const int64_t n_head = g.get_int(p + "attention.head_count");
  j["num_attention_heads"] = n_head;
  j["num_key_value_heads"] = g.get_int_or(p + "attention.head_count_kv", n_head);
  if (g.find(p + "attention.key_length")) {
    j["head_dim"] = g.get_int(p + "attention.key_length");
    const int64_t vlen = g.get_int_or(p + "attention.value_length", j["head_dim"].get<int64_t>());
    if (vlen != j["head_dim"].get<int64_t>()) {
      throw Error(g.source + ": metadata '" + p + "attention.value_length' differs from key_length (unsupported)");
    }
  }
  j["rms_norm_eps"] = g.get_float(p + "attention.layer_norm_rms_epsilon");
  j["max_position_embeddings"] = g.get_int(p + "context_length");
  j["rope_theta"] = g.get_float_or(p + "rope.freq_base", 10000.0);
  if (const auto scaling = g.get_string_opt(p + "rope.scaling.type"); scaling && *scaling != "none") {
    if (*scaling != "linear") {
      throw Error(g.source + ": metadata '" + p + "rope.scaling.type' = '" + *scaling + "' is not supported");
    }
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", g.get_float(p + "rope.scaling.factor")}};
  }
  int64_t vocab = 0;
  if (g.find("tokenizer.ggml.tokens")) {
    vocab = static_cast<int64_t>(g.get_array_size("tokenizer.ggml.tokens"));
  } else if (const formats::GgufTensorInfo* te = g.find_tensor("token_embd.weight"); te && te->ne.size() == 2) {
    vocab = te->ne[1];
  }
  if (vocab <= 0) throw Error(g.source + ": vocabulary size unknown (no tokenizer.ggml.tokens, no token_embd.weight)");
  j["vocab_size"] = vocab;
  j["tie_word_embeddings"] = g.find_tensor("output.weight") == nullptr;
  j["attention_bias"] = arch == "qwen2";
  if (g.find("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = g.get_int("tokenizer.ggml.eos_token_id");
  if (g.find("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = g.get_int("tokenizer.ggml.bos_token_id");
  // No "dtype": llama.cpp keeps RoPE frequencies in float32, so must we.
  formats::ModelConfig cfg = formats::parse_model_config(j, g.source);
  if (g.find(p + "rope.dimension_count")) {
    const int64_t dims = g.get_int(p + "rope.dimension_count");
    if (dims <= 0 || dims > cfg.head_dim || dims % 2 != 0) {
      throw Error(g.source + ": metadata '" + p + "rope.dimension_count' = " + std::to_string(dims) +
                  " does not fit head_dim " + std::to_string(cfg.head_dim));
    }
    for (auto& [t, r] : cfg.rope) r.partial_rotary_factor = static_cast<double>(dims) / static_cast<double>(cfg.head_dim);
  }
  return cfg;
}

// llama.cpp stores Llama 3 RoPE scaling as the tensor rope_freqs.weight: per frequency a
// divisor of the base frequency. That is exactly longrope's per-frequency factor with an
// attention scaling of 1, so it becomes one (same short and long factors).
static void apply_rope_freqs(const formats::GgufFile& f, formats::ModelConfig& cfg) {
  const formats::GgufTensorInfo* ti = f.gguf().find_tensor("rope_freqs.weight");
  if (ti == nullptr) return;
  auto& r = cfg.rope.at(formats::LayerType::kFull);
  int64_t rot = static_cast<int64_t>(static_cast<double>(cfg.head_dim) * r.partial_rotary_factor);
  rot -= rot % 2;
  if (ti->ne.size() != 1 || ti->ne[0] != rot / 2) {
    throw Error(f.path().string() + ": tensor 'rope_freqs.weight' has dims " + shape_of(ti->ne) + ", expected [" +
                std::to_string(rot / 2) + "]");
  }
  if (r.type != "default") {
    throw Error(f.path().string() + ": rope_freqs.weight together with RoPE scaling '" + r.type + "' is not supported");
  }
  HostBuffer buf = dequantize(f, *ti);
  const float* v = reinterpret_cast<const float*>(buf.data());
  r.type = "longrope";
  r.short_factor.assign(v, v + rot / 2);
  r.long_factor = r.short_factor;
  r.attention_factor = 1.0;
  for (auto& [t, other] : cfg.rope) other = r;
}

GgufModelWeights load_gguf_weights(const std::filesystem::path& path, bool dequantize_all) {
  auto file = formats::GgufFile::open(path);
  GgufModelWeights out;
  out.config = gguf_model_config(file->gguf());
  apply_rope_freqs(*file, out.config);
  const formats::ModelConfig& c = out.config;
  const int64_t H = c.hidden_size, D = c.head_dim, Nq = c.num_attention_heads, Nkv = c.num_key_value_heads,
                F = c.intermediate_size, V = c.vocab_size;
  const bool llama = c.model_type == "llama";
  Loader L(*file, out, dequantize_all);
  L.add("token_embd.weight", "model.embed_tokens.weight", {V, H});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string g = "blk." + std::to_string(i) + ".";
    const std::string h = "model.layers." + std::to_string(i) + ".";
    L.add(g + "attn_norm.weight", h + "input_layernorm.weight", {H});
    uint8_t* wq = L.add(g + "attn_q.weight", h + "self_attn.q_proj.weight", {Nq * D, H});
    uint8_t* wk = L.add(g + "attn_k.weight", h + "self_attn.k_proj.weight", {Nkv * D, H});
    if (llama) {
      const std::string hq = h + "self_attn.q_proj.weight", hk = h + "self_attn.k_proj.weight";
      unpermute_rope_rows(wq, Nq, D, dtype_row_bytes(out.tensors[hq].dtype, H));
      unpermute_rope_rows(wk, Nkv, D, dtype_row_bytes(out.tensors[hk].dtype, H));
    }
    L.add(g + "attn_v.weight", h + "self_attn.v_proj.weight", {Nkv * D, H});
    if (c.attention_bias) {
      // Only qwen2 has biases, and its rows are not permuted (NEOX RoPE).
      L.add(g + "attn_q.bias", h + "self_attn.q_proj.bias", {Nq * D});
      L.add(g + "attn_k.bias", h + "self_attn.k_proj.bias", {Nkv * D});
      L.add(g + "attn_v.bias", h + "self_attn.v_proj.bias", {Nkv * D});
    }
    if (c.model_type == "qwen3") {
      L.add(g + "attn_q_norm.weight", h + "self_attn.q_norm.weight", {D});
      L.add(g + "attn_k_norm.weight", h + "self_attn.k_norm.weight", {D});
    }
    L.add(g + "attn_output.weight", h + "self_attn.o_proj.weight", {H, Nq * D});
    L.add(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", {H});
    L.add(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", {F, H});
    L.add(g + "ffn_up.weight", h + "mlp.up_proj.weight", {F, H});
    L.add(g + "ffn_down.weight", h + "mlp.down_proj.weight", {H, F});
  }
  L.add("output_norm.weight", "model.norm.weight", {H});
  if (!c.tie_word_embeddings) L.add("output.weight", "lm_head.weight", {V, H});
  out.stored_types = L.types();
  return out;
}

}  // namespace tandem::models
