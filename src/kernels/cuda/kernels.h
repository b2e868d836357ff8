// CUDA kernels of the transformer blocks: host launchers taking device pointers
// and a stream. Plain C++ declarations (the definitions are in the .cu files of
// this folder, built only with TANDEM_HAVE_CUDA). Each launcher checks its
// arguments and the launch and throws tandem::Error on failure; faults inside a
// kernel surface at the next synchronization.
//
// Numerics follow the CPU kernels (kernels/cpu/ops.h, matmul.h), which are the
// references the tests compare against: float32 activations, float32
// accumulation, the same formulas (Gemma's 1 + w, tanh-GELU, soft-capping).
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_backend.h"
#include "tensor/dtype.h"

namespace tandem::kernels::cuda {

// ---- elementwise and row-wise (ops.cu) ----

// out[i, :] = table[ids[i], :] * scale, table F32 or BF16 [vocab, hidden].
// An id outside [0, vocab) gives a row of zeros (the tokenizer never makes one;
// a kernel cannot throw).
void embedding(const void* table, DType table_type, int64_t vocab, int64_t hidden,
               const int32_t* ids, int64_t n, float scale, float* out, cudaStream_t stream);

// y = x / rms(x) * (w + offset) per row of n; offset 1 for Gemma. x and y may alias.
void rmsnorm(const float* x, const float* w, float offset, int64_t rows, int64_t n, float eps,
             float* y, cudaStream_t stream);

enum class RopeStyle {
  kHalf,         // pairs (i, i + rot_dim/2): the NeoX / transformers rotate_half convention (CPU
                 // rope_apply)
  kInterleaved,  // pairs (2i, 2i + 1): the original GPT-J / Meta convention
};
// Rotary embedding in place on x [n_tokens, n_heads, head_dim] (row stride
// row_stride floats, >= n_heads * head_dim), first rot_dim dims of each head.
// Token t is at position pos[t]; angle_i = inv_freq[i] * pos in float32, then
// cos and sin (in double, as models::Rope::cos_sin) times `scaling`.
// inv_freq holds rot_dim / 2 values on the device.
void rope(float* x, int64_t n_tokens, int64_t row_stride, int64_t n_heads, int64_t head_dim,
          int64_t rot_dim, const int32_t* pos, const float* inv_freq, float scaling,
          RopeStyle style, cudaStream_t stream);

// out[i] = silu(gate[i]) * up[i]  /  gelu_tanh(gate[i]) * up[i]; out may alias either.
void silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);
void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);

// Final logits in place: x = tanh(x / softcap) * softcap when softcap > 0, then
// x /= temperature when temperature > 0 (0 means greedy: left as they are).
void process_logits(float* x, int64_t n, float softcap, float temperature, cudaStream_t stream);

// Float32 to BF16 or F16 (round to nearest even), for the activations of gemm().
void convert_f32(const float* x, int64_t n, DType to, void* out, cudaStream_t stream);

// ---- attention over a paged KV cache (attention.cu) ----

// Keys and values are float32 rows of kv_dim = n_kv_heads * head_dim. Position
// p of sequence s lives in block b = block_tables[s * max_blocks + p / block_size],
// at k_cache + b * block_stride + (p % block_size) * row_stride (v_cache alike),
// so both a per-layer pool and the CPU pool's interleaved layout can be read.
struct PagedKv {
  const float* k_cache = nullptr;
  const float* v_cache = nullptr;
  int64_t block_stride = 0;  // floats from one block id to the next
  int64_t row_stride = 0;    // floats from one position to the next inside a block
  int32_t block_size = 0;
  const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks] block ids
  int32_t max_blocks = 0;
};

struct AttentionShape {
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;  // divides n_heads (grouped-query attention)
  int32_t head_dim = 0;    // <= 256
  float scale = 1.0f;      // applied to q·k
  float softcap = 0.0f;    // 0: none; else s = tanh(s / softcap) * softcap
  int32_t window = 0;      // 0: full causal; else a query at p sees keys p-window+1..p
};

// Decode: one query per sequence, at position seq_lens[s] - 1 (its key and value
// already written). q and out [n_seqs, n_heads * head_dim].
void attention_decode(const float* q, int32_t n_seqs, const int32_t* seq_lens, const PagedKv& kv,
                      const AttentionShape& shape, float* out, cudaStream_t stream);

// Prefill (or any mix): n_rows queries, row r of sequence q_seq[r] at position
// q_pos[r], causal against that sequence's keys 0..q_pos[r] (already written).
void attention_prefill(const float* q, int32_t n_rows, const int32_t* q_seq, const int32_t* q_pos,
                       const PagedKv& kv, const AttentionShape& shape, float* out,
                       cudaStream_t stream);

// attention_prefill()'s per-row code run on the host, all 32 lanes of a warp in
// one call, for tests on machines without a GPU. All pointers are host pointers.
void attention_emulated(const float* q, int32_t n_rows, const int32_t* q_seq, const int32_t* q_pos,
                        const PagedKv& kv, const AttentionShape& shape, float* out);

// ---- linear layers: y[m, n] = x[m, k] · w[n, k]ᵀ (gemm.cu, gemv.cu) ----

// cuBLAS GEMM for BF16 or F16 weights; x in the same dtype (convert_f32), y
// float32 with row stride n. Float32 accumulation.
void gemm(const BlasHandle& blas, const void* w, DType wtype, const void* x, int64_t m, int64_t n,
          int64_t k, float* y);

// Decode GEMV for small m (<= 8): weights BF16, F16, Q8_0 or Q4_K in GGUF's
// byte layout (tensor/ggml_quant.h), dequantized in registers; x float32
// [m, k], y float32 [m, n]. k must be a whole number of blocks.
void gemv(const void* w, DType wtype, const float* x, int64_t m, int64_t n, int64_t k, float* y,
          cudaStream_t stream);
constexpr int64_t kGemvMaxM = 8;

// gemv()'s per-lane code (the block decoding and which lane reads what) run on
// the host, lane after lane, with the lanes' sums added as the warp reduction
// would. For tests: it checks GGUF's bit layouts in the kernel's own code on
// machines without a GPU. w, x and y are host pointers.
void gemv_emulated(const void* w, DType wtype, const float* x, int64_t m, int64_t n, int64_t k,
                   float* y);

}  // namespace tandem::kernels::cuda
