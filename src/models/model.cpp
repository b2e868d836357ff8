#include "models/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "base/error.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/repack.h"
#include "models/gguf_loader.h"
#include "tensor/ggml_quant.h"

namespace tandem::models {

using formats::LayerType;

namespace {

// Attributes the time since the previous mark to one operation of a
// StepProfile; does nothing when no profile is attached.
class Lap {
 public:
  explicit Lap(StepProfile* p) : p_(p) {
    if (p_ != nullptr) t_ = std::chrono::steady_clock::now();
  }
  void operator()(StepProfile::Op op, uint64_t bytes = 0) {
    if (p_ == nullptr) return;
    const auto now = std::chrono::steady_clock::now();
    p_->seconds[op] += std::chrono::duration<double>(now - t_).count();
    p_->bytes[op] += bytes;
    t_ = now;
  }

 private:
  StepProfile* p_;
  std::chrono::steady_clock::time_point t_;
};

uint64_t bytes_of(const TensorView& w) { return w.data != nullptr ? w.nbytes() : 0; }

std::string layer_prefix(int64_t i) { return "model.layers." + std::to_string(i) + "."; }

template <typename T>
void ensure_size(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, const LoadOptions& opts) {
  if (dir.extension() == ".gguf" && !std::filesystem::is_directory(dir)) return load_gguf(dir, opts);
  std::unique_ptr<Model> m(new Model());
  m->dir_ = dir;
  if (!std::filesystem::is_directory(dir)) throw Error(dir.string() + ": not a model folder (no such directory)");
  m->cfg_ = formats::load_model_config(dir / "config.json");
  m->arch_ = configure_model(m->cfg_);
  m->gen_cfg_ = formats::load_generation_config(dir / "generation_config.json");
  m->ckpt_ = formats::Checkpoint::open(dir);
  m->load_weights(opts);
  m->build_buffers(opts);
  return m;
}

std::unique_ptr<Model> Model::load_gguf(const std::filesystem::path& path, const LoadOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  m->dir_ = path;
  GgufModelWeights w = load_gguf_weights(path, opts.convert_to_f32);
  m->cfg_ = std::move(w.config);
  m->arch_ = configure_model(m->cfg_);
  m->prepared_ = std::move(w.tensors);
  m->owned_ = std::move(w.buffers);
  m->stored_types_ = std::move(w.stored_types);
  // The weights are already copies in owned_ (huge-page) memory, in their file
  // format or float32: use them in place (unless --quantize converts them).
  LoadOptions o = opts;
  if (!o.bf16_activations) o.bf16_activations = true;  // llama.cpp's numerics for its format
  o.use_mmap = true;
  o.convert_to_f32 = false;
  m->load_weights(o);
  m->build_buffers(opts);  // cfg_.dtype is empty: float32 frequencies, as llama.cpp
  return m;
}

void Model::build_buffers(const LoadOptions& opts) {
  std::optional<DType> freq_dtype;
  if (!opts.exact_buffers && cfg_.dtype == "bfloat16") freq_dtype = DType::kBF16;
  if (!opts.exact_buffers && cfg_.dtype == "float16") freq_dtype = DType::kF16;
  embed_scale_ = 1.0f;
  if (arch_.scale_embeddings) {
    embed_scale_ = static_cast<float>(std::sqrt(static_cast<double>(cfg_.hidden_size)));
    if (freq_dtype == DType::kBF16) embed_scale_ = bf16_to_f32(f32_to_bf16(embed_scale_));
    if (freq_dtype == DType::kF16) embed_scale_ = f16_to_f32(f32_to_f16(embed_scale_));
  }
  for (LayerType t : {LayerType::kFull, LayerType::kSliding}) {
    // Build a Rope for both types (params default to the full ones) so indexing is simple.
    const auto& p = cfg_.rope.count(t) ? cfg_.rope.at(t) : cfg_.rope.at(LayerType::kFull);
    ropes_.emplace_back(p, cfg_.head_dim, cfg_.max_position_embeddings, freq_dtype);
  }
}

TensorView Model::lookup(const std::string& name, std::string& file) const {
  if (ckpt_) {
    TensorView t = ckpt_->get(name);
    file = ckpt_->file_of(name);
    return t;
  }
  file = dir_.string();
  auto it = prepared_.find(name);
  if (it == prepared_.end()) throw Error(file + ": tensor '" + name + "' not found");
  return it->second;
}

bool Model::has_tensor(const std::string& name) const {
  return ckpt_ ? ckpt_->has(name) : prepared_.count(name) != 0;
}

TensorView Model::matrix(const std::string& name, std::vector<int64_t> shape, const LoadOptions& opts,
                         WeightRole role) {
  std::string file;
  TensorView t = lookup(name, file);
  if (t.dtype != DType::kF32 && t.dtype != DType::kBF16 && t.dtype != DType::kF16 && !dtype_is_quantized(t.dtype)) {
    throw Error(file + ": tensor '" + name + "' has dtype " + std::string(dtype_name(t.dtype)) +
                "; weights must be F32, BF16, F16 or block-quantized");
  }
  if (t.shape != shape) {
    throw Error(file + ": tensor '" + name + "' has shape " + shape_to_string(t.shape) + " but " + cfg_.source +
                " implies " + shape_to_string(shape));
  }
  params_ += t.numel();
  const int64_t rows = shape[0], k = shape[1];
  const DType stored = t.dtype;
  DType want = t.dtype;
  if (opts.convert_to_f32) {
    want = DType::kF32;
  } else if (opts.quantize) {
    want = recipe_type(*opts.quantize, name, role, rows, k, cfg_.num_hidden_layers, t.dtype);
  }
  if (want != t.dtype) {
    // Row by row: decode to float32, encode as `want` (parallel: K-quant
    // encoding searches scales and is the slow part of loading).
    const size_t src_row = dtype_row_bytes(t.dtype, k), dst_row = dtype_row_bytes(want, k);
    HostBuffer buf(dst_row * static_cast<size_t>(rows));
    const GgmlType g = *ggml_from_dtype(want);
    if (!load_pool_) load_pool_ = std::make_unique<ThreadPool>(0);
    const auto* src = static_cast<const uint8_t*>(t.data);
    uint8_t* dst = buf.data();
    const DType from = t.dtype;
    load_pool_->parallel_for(
        rows,
        [&](int64_t r0, int64_t r1) {
          std::vector<float> tmp(static_cast<size_t>(k));
          for (int64_t r = r0; r < r1; ++r) {
            kernels::to_f32(src + static_cast<size_t>(r) * src_row, from, k, tmp.data());
            if (want == DType::kF32) {
              std::memcpy(dst + static_cast<size_t>(r) * dst_row, tmp.data(), dst_row);
            } else {
              quantize_row(g, tmp.data(), dst + static_cast<size_t>(r) * dst_row, k);
            }
          }
        },
        std::max<int64_t>(1, 8192 / std::max<int64_t>(1, k)));
    t.data = buf.data();
    t.dtype = want;
    owned_.push_back(std::move(buf));
  } else if (!opts.use_mmap) {
    HostBuffer buf(t.nbytes());
    std::memcpy(buf.data(), t.data, t.nbytes());
    t.data = buf.data();
    owned_.push_back(std::move(buf));
  }
  // Interleave Q8_0 for the AVX-512 kernels, in place in memory that is ours
  // (a copy or conversion made above, or a GGUF file's tensors, which the GGUF
  // loader already copied), never in a file mapping. The embedding alone is
  // only looked up by rows; linear layers and the head (tied or not) are what
  // the matmul kernels stream.
  const bool ours = want != stored || !opts.use_mmap || !ckpt_;
  static const bool env_off = std::getenv("TANDEM_NO_REPACK") != nullptr;  // A/B measurements
  if (opts.repack && !env_off && ours && role != WeightRole::kEmbedding && kernels::active_isa() == kernels::Isa::kAvx512 &&
      kernels::can_pack(t.dtype, rows, k)) {
    TensorView p = t;
    p.dtype = kernels::packed_type(t.dtype);
    HostBuffer buf(p.nbytes());
    kernels::pack(t.dtype, static_cast<const uint8_t*>(t.data), rows, k, buf.data());
    p.data = buf.data();
    // Replace the buffer the unpacked copy lived in (one per matrix, also for GGUF).
    auto it = std::find_if(owned_.begin(), owned_.end(), [&](const HostBuffer& b) { return b.data() == t.data; });
    if (it != owned_.end()) {
      *it = std::move(buf);
    } else {
      owned_.push_back(std::move(buf));
    }
    t = p;
  }
  weight_bytes_ += t.nbytes();
  matrix_bytes_by_type_[std::string(dtype_name(dtype_unpacked(t.dtype)))] += t.nbytes();
  return t;
}

TensorView Model::join_rows(std::initializer_list<TensorView*> parts) {
  const TensorView& first = **parts.begin();
  std::vector<std::vector<HostBuffer>::iterator> bufs;
  int64_t rows = 0;
  for (TensorView* t : parts) {
    if (t->dtype != first.dtype || t->rank() != 2 || t->dim(1) != first.dim(1)) return {};
    auto it = std::find_if(owned_.begin(), owned_.end(), [&](const HostBuffer& b) { return b.data() == t->data; });
    if (it == owned_.end()) return {};  // in a file mapping, or inside a larger buffer
    bufs.push_back(it);
    rows += t->dim(0);
  }
  TensorView joined{first.dtype, {rows, first.dim(1)}, nullptr};
  HostBuffer buf(joined.nbytes());
  size_t at = 0;
  for (TensorView* t : parts) {
    std::memcpy(buf.data() + at, t->data, t->nbytes());
    t->data = buf.data() + at;
    at += t->nbytes();
  }
  joined.data = buf.data();
  // Free the parts' buffers (highest position first, so the iterators stay valid).
  std::sort(bufs.begin(), bufs.end(), [](auto a, auto b) { return a > b; });
  for (auto it : bufs) owned_.erase(it);
  owned_.push_back(std::move(buf));
  return joined;
}

std::vector<float> Model::vector(const std::string& name, int64_t n) {
  std::string file;
  TensorView t = lookup(name, file);
  if (t.shape != std::vector<int64_t>{n}) {
    throw Error(file + ": tensor '" + name + "' has shape " + shape_to_string(t.shape) + " but " + cfg_.source +
                " implies [" + std::to_string(n) + "]");
  }
  if (t.dtype != DType::kF32 && t.dtype != DType::kBF16 && t.dtype != DType::kF16) {
    throw Error(file + ": tensor '" + name + "' has dtype " + std::string(dtype_name(t.dtype)) +
                "; weights must be F32, BF16 or F16");
  }
  std::vector<float> v(static_cast<size_t>(n));
  kernels::to_f32(t.data, t.dtype, n, v.data());
  params_ += n;
  weight_bytes_ += static_cast<uint64_t>(n) * sizeof(float);
  return v;
}

void Model::load_weights(const LoadOptions& opts) {
  bf16_acts_ = opts.bf16_activations.value_or(false) ? kernels::Bf16Activations::kRound : kernels::Bf16Activations::kSplit;
  const int64_t H = cfg_.hidden_size, D = cfg_.head_dim, Nq = cfg_.num_attention_heads,
                Nkv = cfg_.num_key_value_heads, F = cfg_.intermediate_size, V = cfg_.vocab_size;
  embed_ = matrix("model.embed_tokens.weight", {V, H}, opts,
                  cfg_.tie_word_embeddings ? WeightRole::kHead : WeightRole::kEmbedding);
  layers_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
  for (int64_t i = 0; i < cfg_.num_hidden_layers; ++i) {
    LayerWeights& L = layers_[static_cast<size_t>(i)];
    const std::string p = layer_prefix(i);
    L.type = cfg_.layer_types[static_cast<size_t>(i)];
    L.attn_norm = vector(p + "input_layernorm.weight", H);
    if (arch_.fused_qkv) {
      L.wqkv = matrix(p + "self_attn.qkv_proj.weight", {(Nq + 2 * Nkv) * D, H}, opts);
    } else {
      L.wq = matrix(p + "self_attn.q_proj.weight", {Nq * D, H}, opts);
      L.wk = matrix(p + "self_attn.k_proj.weight", {Nkv * D, H}, opts);
      L.wv = matrix(p + "self_attn.v_proj.weight", {Nkv * D, H}, opts);
    }
    if (arch_.qkv_bias) {
      L.bq = vector(p + "self_attn.q_proj.bias", Nq * D);
      L.bk = vector(p + "self_attn.k_proj.bias", Nkv * D);
      L.bv = vector(p + "self_attn.v_proj.bias", Nkv * D);
    }
    if (arch_.qk_norm) {
      L.q_norm = vector(p + "self_attn.q_norm.weight", D);
      L.k_norm = vector(p + "self_attn.k_norm.weight", D);
    }
    L.wo = matrix(p + "self_attn.o_proj.weight", {H, Nq * D}, opts);
    if (arch_.o_bias) L.bo = vector(p + "self_attn.o_proj.bias", H);
    if (arch_.sandwich_norms) {
      L.post_attn_norm = vector(p + "post_attention_layernorm.weight", H);
      L.ffn_norm = vector(p + "pre_feedforward_layernorm.weight", H);
      L.post_ffn_norm = vector(p + "post_feedforward_layernorm.weight", H);
    } else {
      L.ffn_norm = vector(p + "post_attention_layernorm.weight", H);
    }
    if (arch_.fused_gate_up) {
      L.w_gate_up = matrix(p + "mlp.gate_up_proj.weight", {2 * F, H}, opts);
    } else {
      L.w_gate = matrix(p + "mlp.gate_proj.weight", {F, H}, opts);
      L.w_up = matrix(p + "mlp.up_proj.weight", {F, H}, opts);
    }
    L.w_down = matrix(p + "mlp.down_proj.weight", {H, F}, opts);
    if (arch_.mlp_bias) {
      L.b_gate = vector(p + "mlp.gate_proj.bias", F);
      L.b_up = vector(p + "mlp.up_proj.bias", F);
      L.b_down = vector(p + "mlp.down_proj.bias", H);
    }
    // q, k, v as one matrix and gate, up as another, when they share a dtype
    // and the memory is ours: a decode step then streams each set in one
    // matmul, with one thread-pool barrier instead of three or two (same
    // products, row for row). Interleaved groups of 16 rows join the same way.
    static const bool env_no_join = std::getenv("TANDEM_NO_JOIN") != nullptr;  // A/B measurements
    if (opts.join_matrices && !env_no_join) {
      if (!arch_.fused_qkv) L.wqkv = join_rows({&L.wq, &L.wk, &L.wv});
      // Quantization mixes often give v more bits than q and k (Q4_K's Q6_K,
      // or Q8_0 where the row length rules Q6_K out): then q and k alone.
      if (!arch_.fused_qkv && L.wqkv.data == nullptr) L.wqk = join_rows({&L.wq, &L.wk});
      if (!arch_.fused_gate_up && !arch_.mlp_bias) L.w_gate_up = join_rows({&L.w_gate, &L.w_up});
    }
  }
  for (const LayerWeights& L : layers_) {
    any_wqkv_ = any_wqkv_ || L.wqkv.data != nullptr || L.wqk.data != nullptr;
    any_w_gate_up_ = any_w_gate_up_ || L.w_gate_up.data != nullptr;
  }
  final_norm_ = vector("model.norm.weight", H);
  if (cfg_.tie_word_embeddings) {
    lm_head_ = embed_;
  } else if (has_tensor("lm_head.weight")) {
    lm_head_ = matrix("lm_head.weight", {V, H}, opts, WeightRole::kHead);
  } else {
    throw Error(dir_.string() + ": tensor 'lm_head.weight' not found and tie_word_embeddings is false in " +
                cfg_.source);
  }
  load_pool_.reset();
}

ModelInfo Model::info() const {
  ModelInfo i;
  i.family = arch_.family;
  i.model_type = cfg_.model_type;
  i.params = params_;
  i.weight_bytes = weight_bytes_;
  for (const auto& [type, bytes] : matrix_bytes_by_type_) {
    i.weight_dtypes += (i.weight_dtypes.empty() ? "" : "+") + type;
    i.matrix_bytes += bytes;
  }
  if (!stored_types_.empty()) i.weight_dtypes += " (file: " + stored_types_ + ")";
  // Decode streams every matrix once per token, except an untied embedding, of
  // which it reads one row; plus the float32 norm and bias vectors.
  i.decode_bytes = i.matrix_bytes;
  if (!cfg_.tie_word_embeddings) i.decode_bytes -= embed_.nbytes() - dtype_row_bytes(embed_.dtype, embed_.dim(1));
  i.decode_bytes += weight_bytes_ - i.matrix_bytes;
  return i;
}

std::vector<int32_t> Model::eos_token_ids() const {
  std::vector<int32_t> ids = gen_cfg_.eos_token_ids;
  for (int32_t id : cfg_.eos_token_ids) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

KvCache Model::new_cache(int64_t max_tokens) const {
  if (max_tokens <= 0) max_tokens = cfg_.max_position_embeddings;
  return KvCache(cfg_.num_hidden_layers, cfg_.num_key_value_heads * cfg_.head_dim, max_tokens);
}

void Model::embed(std::span<const SeqInput> batch, float* x) const {
  const int64_t H = cfg_.hidden_size;
  int64_t t = 0;
  for (const auto& s : batch) {
    for (int32_t id : s.tokens) {
      kernels::matrix_row_to_f32(embed_, id, x + t * H);
      if (arch_.scale_embeddings) kernels::scale_inplace(x + t * H, embed_scale_, H);
      ++t;
    }
  }
}

void Model::forward(std::span<const SeqInput> batch, Workspace& ws, ThreadPool& pool) const {
  const int64_t H = cfg_.hidden_size, D = cfg_.head_dim, Nq = cfg_.num_attention_heads,
                Nkv = cfg_.num_key_value_heads, F = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int64_t QD = Nq * D, KD = Nkv * D;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);

  // Validate everything before touching any cache.
  int64_t T = 0, R = 0;
  for (const auto& s : batch) {
    if (s.cache == nullptr) throw Error("forward: a sequence has no KV cache");
    if (s.tokens.empty()) throw Error("forward: a sequence has no tokens");
    for (int32_t id : s.tokens) {
      if (id < 0 || id >= V) {
        throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");
      }
    }
    s.cache->reserve(s.cache->length() + static_cast<int64_t>(s.tokens.size()));
    T += static_cast<int64_t>(s.tokens.size());
    R += s.all_logits ? static_cast<int64_t>(s.tokens.size()) : 1;
  }
  if (T == 0) return;
  Lap lap(ws.profile);
  if (ws.profile != nullptr) ++ws.profile->steps;

  ensure_size(ws.x, static_cast<size_t>(T * H));
  ensure_size(ws.xb, static_cast<size_t>(T * H));
  ensure_size(ws.xb2, static_cast<size_t>(T * H));
  ensure_size(ws.q, static_cast<size_t>(T * QD));
  ensure_size(ws.k, static_cast<size_t>(T * KD));
  ensure_size(ws.v, static_cast<size_t>(T * KD));
  ensure_size(ws.att, static_cast<size_t>(T * QD));
  if (any_wqkv_) ensure_size(ws.qkv, static_cast<size_t>(T * (QD + 2 * KD)));
  if (any_w_gate_up_) ensure_size(ws.hidden, static_cast<size_t>(T * 2 * F));
  ensure_size(ws.gate, static_cast<size_t>(T * F));
  ensure_size(ws.up, static_cast<size_t>(T * F));

  // cos/sin for every token, per layer type.
  const int64_t half = ropes_[0].rot_dim() / 2;
  ensure_size(ws.rope_cos, static_cast<size_t>(2 * T * half));
  ensure_size(ws.rope_sin, static_cast<size_t>(2 * T * half));
  std::vector<float> inv_freq;
  for (int type = 0; type < 2; ++type) {
    const Rope& rope = ropes_[static_cast<size_t>(type)];
    TANDEM_CHECK(rope.rot_dim() / 2 == half, "rotary dims differ between layer types");
    int64_t t = 0;
    for (const auto& s : batch) {
      const int64_t pos0 = s.cache->length();
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      float scaling = 1.0f;
      rope.frequencies(pos0 + n, inv_freq, scaling);
      for (int64_t i = 0; i < n; ++i, ++t) {
        size_t off = static_cast<size_t>((type * T + t) * half);
        Rope::cos_sin(inv_freq, scaling, pos0 + i, ws.rope_cos.data() + off, ws.rope_sin.data() + off);
      }
    }
  }

  float* x = ws.x.data();
  float* xb = ws.xb.data();
  float* xb2 = ws.xb2.data();
  float* q = ws.q.data();
  float* k = ws.k.data();
  float* v = ws.v.data();
  embed(batch, x);
  lap(StepProfile::kEmbed);

  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& L = layers_[l];
    const int type = static_cast<int>(L.type);
    kernels::rmsnorm(x, L.attn_norm.data(), arch_.norm_offset, T, H, eps, xb);
    lap(StepProfile::kNorm);
    if (L.wqkv.data != nullptr || L.wqk.data != nullptr) {
      // One matmul into [q | k | v] (or [q | k], then v on its own), split per token.
      const bool with_v = L.wqkv.data != nullptr;
      const int64_t W = QD + KD + (with_v ? KD : 0);
      kernels::matmul(xb, T, H, with_v ? L.wqkv : L.wqk, ws.qkv.data(), W, pool, bf16_acts_);
      for (int64_t t = 0; t < T; ++t) {
        const float* row = ws.qkv.data() + t * W;
        std::memcpy(q + t * QD, row, static_cast<size_t>(QD) * sizeof(float));
        std::memcpy(k + t * KD, row + QD, static_cast<size_t>(KD) * sizeof(float));
        if (with_v) std::memcpy(v + t * KD, row + QD + KD, static_cast<size_t>(KD) * sizeof(float));
      }
      if (!with_v) kernels::matmul(xb, T, H, L.wv, v, KD, pool, bf16_acts_);
    } else {
      kernels::matmul(xb, T, H, L.wq, q, QD, pool, bf16_acts_);
      kernels::matmul(xb, T, H, L.wk, k, KD, pool, bf16_acts_);
      kernels::matmul(xb, T, H, L.wv, v, KD, pool, bf16_acts_);
    }
    lap(StepProfile::kQkv, L.wqkv.data != nullptr ? bytes_of(L.wqkv) : bytes_of(L.wq) + bytes_of(L.wk) + bytes_of(L.wv));
    if (!L.bq.empty()) {
      kernels::add_bias(q, L.bq.data(), T, QD);
      kernels::add_bias(k, L.bk.data(), T, KD);
      kernels::add_bias(v, L.bv.data(), T, KD);
    }
    if (arch_.qk_norm) {
      kernels::rmsnorm(q, L.q_norm.data(), arch_.norm_offset, T * Nq, D, eps, q);
      kernels::rmsnorm(k, L.k_norm.data(), arch_.norm_offset, T * Nkv, D, eps, k);
    }
    const int64_t rot = ropes_[static_cast<size_t>(type)].rot_dim();
    for (int64_t t = 0; t < T; ++t) {
      size_t off = static_cast<size_t>((type * T + t) * half);
      const float* c = ws.rope_cos.data() + off;
      const float* s = ws.rope_sin.data() + off;
      kernels::rope_apply(q + t * QD, Nq, D, rot, c, s);
      kernels::rope_apply(k + t * KD, Nkv, D, rot, c, s);
    }
    lap(StepProfile::kRope);

    kernels::AttentionParams ap;
    ap.n_heads = Nq;
    ap.n_kv_heads = Nkv;
    ap.head_dim = D;
    ap.scale = arch_.attn_scale;
    ap.softcap = arch_.attn_softcap;
    ap.window = L.type == LayerType::kSliding ? cfg_.sliding_window.value_or(0) : 0;
    // New rows into each sequence's blocks, then every sequence's block table
    // (as row pointers of this layer, concatenated) for one batched attention pass.
    const auto li = static_cast<int64_t>(l);
    ws.k_blocks.clear();
    ws.v_blocks.clear();
    std::vector<size_t> table_start;
    table_start.reserve(batch.size() + 1);
    int64_t t0 = 0;
    for (const auto& s : batch) {
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      const int64_t pos0 = s.cache->length();
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(s.cache->key_row(li, pos0 + i), k + (t0 + i) * KD, static_cast<size_t>(KD) * sizeof(float));
        std::memcpy(s.cache->value_row(li, pos0 + i), v + (t0 + i) * KD, static_cast<size_t>(KD) * sizeof(float));
      }
      const auto& table = s.cache->block_table();
      const int64_t used_blocks = (pos0 + n + s.cache->block_size() - 1) / s.cache->block_size();
      table_start.push_back(ws.k_blocks.size());
      for (int64_t b = 0; b < used_blocks; ++b) {
        ws.k_blocks.push_back(s.cache->pool().keys(table[static_cast<size_t>(b)], li));
        ws.v_blocks.push_back(s.cache->pool().values(table[static_cast<size_t>(b)], li));
      }
      t0 += n;
    }
    table_start.push_back(ws.k_blocks.size());
    std::vector<kernels::PagedAttentionJob> jobs(batch.size());
    t0 = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& s = batch[i];
      auto& j = jobs[i];
      j.q = q + t0 * QD;
      j.n_q = static_cast<int64_t>(s.tokens.size());
      j.pos0 = s.cache->length();
      const size_t nb = table_start[i + 1] - table_start[i];
      j.k_blocks = std::span<const float* const>(ws.k_blocks.data() + table_start[i], nb);
      j.v_blocks = std::span<const float* const>(ws.v_blocks.data() + table_start[i], nb);
      j.block_size = s.cache->block_size();
      j.kv_stride = KD;
      j.out = ws.att.data() + t0 * QD;
      t0 += j.n_q;
    }
    kernels::attention_paged_batch(jobs, ap, pool);
    lap(StepProfile::kAttention);

    kernels::matmul(ws.att.data(), T, QD, L.wo, xb2, H, pool, bf16_acts_);
    lap(StepProfile::kOut, bytes_of(L.wo));
    if (!L.bo.empty()) kernels::add_bias(xb2, L.bo.data(), T, H);
    if (arch_.sandwich_norms) kernels::rmsnorm(xb2, L.post_attn_norm.data(), arch_.norm_offset, T, H, eps, xb2);
    kernels::add_inplace(x, xb2, T * H);
    lap(StepProfile::kOther);

    kernels::rmsnorm(x, L.ffn_norm.data(), arch_.norm_offset, T, H, eps, xb);
    lap(StepProfile::kNorm);
    float* gate = ws.gate.data();
    float* up = ws.up.data();
    if (L.w_gate_up.data != nullptr) {
      kernels::matmul(xb, T, H, L.w_gate_up, ws.hidden.data(), 2 * F, pool, bf16_acts_);
      for (int64_t t = 0; t < T; ++t) {
        std::memcpy(gate + t * F, ws.hidden.data() + t * 2 * F, static_cast<size_t>(F) * sizeof(float));
        std::memcpy(up + t * F, ws.hidden.data() + t * 2 * F + F, static_cast<size_t>(F) * sizeof(float));
      }
    } else {
      kernels::matmul(xb, T, H, L.w_gate, gate, F, pool, bf16_acts_);
      kernels::matmul(xb, T, H, L.w_up, up, F, pool, bf16_acts_);
    }
    lap(StepProfile::kGateUp,
        L.w_gate_up.data != nullptr ? bytes_of(L.w_gate_up) : bytes_of(L.w_gate) + bytes_of(L.w_up));
    if (!L.b_gate.empty()) {
      kernels::add_bias(gate, L.b_gate.data(), T, F);
      kernels::add_bias(up, L.b_up.data(), T, F);
    }
    if (arch_.activation == Activation::kSilu) {
      kernels::silu_mul(gate, up, T * F, gate);
    } else {
      kernels::gelu_tanh_mul(gate, up, T * F, gate);
    }
    lap(StepProfile::kAct);
    kernels::matmul(gate, T, F, L.w_down, xb2, H, pool, bf16_acts_);
    lap(StepProfile::kDown, bytes_of(L.w_down));
    if (!L.b_down.empty()) kernels::add_bias(xb2, L.b_down.data(), T, H);
    if (arch_.sandwich_norms) kernels::rmsnorm(xb2, L.post_ffn_norm.data(), arch_.norm_offset, T, H, eps, xb2);
    kernels::add_inplace(x, xb2, T * H);
    lap(StepProfile::kOther);
  }

  // Final-normed hidden states of every token, for the sequences that ask (embeddings).
  {
    int64_t t = 0;
    for (const auto& s : batch) {
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      if (s.hidden != nullptr) kernels::rmsnorm(x + t * H, final_norm_.data(), arch_.norm_offset, n, H, eps, s.hidden);
      t += n;
    }
  }

  // Logits only for the rows asked for.
  ensure_size(ws.logits, static_cast<size_t>(R * V));
  int64_t t = 0, r = 0;
  for (const auto& s : batch) {
    const int64_t n = static_cast<int64_t>(s.tokens.size());
    const int64_t first = s.all_logits ? 0 : n - 1;
    for (int64_t i = first; i < n; ++i, ++r) {
      std::memcpy(xb + r * H, x + (t + i) * H, static_cast<size_t>(H) * sizeof(float));
    }
    t += n;
  }
  kernels::rmsnorm(xb, final_norm_.data(), arch_.norm_offset, R, H, eps, xb);
  lap(StepProfile::kNorm);
  kernels::matmul(xb, R, H, lm_head_, ws.logits.data(), V, pool, bf16_acts_);
  lap(StepProfile::kHead, bytes_of(lm_head_));
  if (arch_.final_softcap > 0.0f) kernels::softcap_inplace(ws.logits.data(), R * V, arch_.final_softcap);
  r = 0;
  for (const auto& s : batch) {
    const int64_t rows = s.all_logits ? static_cast<int64_t>(s.tokens.size()) : 1;
    if (s.logits != nullptr) {
      std::memcpy(s.logits, ws.logits.data() + r * V, static_cast<size_t>(rows * V) * sizeof(float));
    }
    r += rows;
  }
  for (const auto& s : batch) s.cache->set_length(s.cache->length() + static_cast<int64_t>(s.tokens.size()));
  lap(StepProfile::kOther);
}

const char* StepProfile::name(int op) {
  static constexpr const char* kNames[kCount] = {"embedding", "norms",    "q/k/v matmul", "rope",        "attention",
                                                  "out matmul", "gate/up matmul", "activation", "down matmul",
                                                  "head matmul", "other (copies, residual)"};
  return op >= 0 && op < kCount ? kNames[op] : "?";
}

}  // namespace tandem::models
