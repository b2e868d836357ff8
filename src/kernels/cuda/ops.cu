// Elementwise and row-wise kernels (kernels.h). One thread per element for the
// elementwise ones; one block per row, reduced with warp shuffles, for RMSNorm.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.h"

namespace tandem::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <bool kBf16>
__global__ void embedding_kernel(const void* table, int64_t vocab, int64_t hidden,
                                 const int32_t* ids, float scale, float* out) {
  const int64_t row = blockIdx.y;
  const int32_t id = ids[row];
  float* o = out + row * hidden;
  const bool valid = id >= 0 && id < vocab;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < hidden;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = 0.0f;
    if (valid) {
      if constexpr (kBf16) {
        v = bf16_bits_to_f32(static_cast<const uint16_t*>(table)[int64_t(id) * hidden + i]);
      } else {
        v = static_cast<const float*>(table)[int64_t(id) * hidden + i];
      }
    }
    o[i] = v * scale;
  }
}

__global__ void rmsnorm_kernel(const float* x, const float* w, float offset, int64_t n, float eps,
                               float* y) {
  const float* xr = x + blockIdx.x * n;
  float* yr = y + blockIdx.x * n;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  __shared__ float partial[kThreads / 32];
  ss = warp_sum(ss);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0f;
    v = warp_sum(v);
    if (threadIdx.x == 0) partial[0] = v;
  }
  __syncthreads();
  // 1/sqrt in double like the CPU reference, which sums in double: the rounding of
  // the scale then matches to the last bit far more often than rsqrtf would.
  const float inv = static_cast<float>(
      1.0 / sqrt(static_cast<double>(partial[0]) / static_cast<double>(n) + eps));
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = (xr[i] * inv) * (w[i] + offset);
}

template <RopeStyle kStyle>
__global__ void rope_kernel(float* x, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                            int64_t half, const int32_t* pos, const float* inv_freq,
                            float scaling) {
  const int64_t t = blockIdx.y;
  const float fp = static_cast<float>(pos[t]);
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n_heads * half;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t h = j / half, i = j % half;
    const float angle = inv_freq[i] * fp;  // float32 product, as transformers computes it
    const float c = static_cast<float>(cos(static_cast<double>(angle))) * scaling;
    const float s = static_cast<float>(sin(static_cast<double>(angle))) * scaling;
    float* xh = x + t * row_stride + h * head_dim;
    const int64_t ia = kStyle == RopeStyle::kHalf ? i : 2 * i;
    const int64_t ib = kStyle == RopeStyle::kHalf ? i + half : 2 * i + 1;
    const float a = xh[ia], b = xh[ib];
    xh[ia] = a * c - b * s;
    xh[ib] = b * c + a * s;
  }
}

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void gelu_tanh_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    const float t = tanhf(kSqrt2OverPi * (g + 0.044715f * g * g * g));
    out[i] = 0.5f * g * (1.0f + t) * up[i];
  }
}

__global__ void process_logits_kernel(float* x, int64_t n, float softcap, float temperature) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = x[i];
    if (softcap > 0.0f) v = tanhf(v / softcap) * softcap;
    if (temperature > 0.0f) v /= temperature;  // a division, as the CPU sampler does
    x[i] = v;
  }
}

template <bool kBf16>
__global__ void convert_kernel(const float* x, int64_t n, void* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (kBf16) {
      static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(x[i]);
    } else {
      static_cast<__half*>(out)[i] = __float2half_rn(x[i]);
    }
  }
}

// Enough blocks to fill the device several times over; the kernels stride the rest.
unsigned elementwise_grid(int64_t n) {
  const int64_t g = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(g < 65536 ? (g > 0 ? g : 1) : 65536);
}

}  // namespace

void embedding(const void* table, DType table_type, int64_t vocab, int64_t hidden,
               const int32_t* ids, int64_t n, float scale, float* out, cudaStream_t stream) {
  require(table_type == DType::kF32 || table_type == DType::kBF16, "cuda::embedding",
          "table must be F32 or BF16, got " + std::string(dtype_name(table_type)));
  require(n <= 65535, "cuda::embedding", "at most 65535 ids per launch, got " + std::to_string(n));
  if (n == 0 || hidden == 0) return;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((hidden + kThreads - 1) / kThreads, 64)),
                  static_cast<unsigned>(n));
  if (table_type == DType::kBF16) {
    embedding_kernel<true><<<grid, kThreads, 0, stream>>>(table, vocab, hidden, ids, scale, out);
  } else {
    embedding_kernel<false><<<grid, kThreads, 0, stream>>>(table, vocab, hidden, ids, scale, out);
  }
  TANDEM_CUDA_CHECK_LAUNCH("embedding_kernel");
}

void rmsnorm(const float* x, const float* w, float offset, int64_t rows, int64_t n, float eps,
             float* y, cudaStream_t stream) {
  require(rows <= 0x7fffffff, "cuda::rmsnorm", "too many rows");
  if (rows == 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, w, offset, n, eps, y);
  TANDEM_CUDA_CHECK_LAUNCH("rmsnorm_kernel");
}

void rope(float* x, int64_t n_tokens, int64_t row_stride, int64_t n_heads, int64_t head_dim,
          int64_t rot_dim, const int32_t* pos, const float* inv_freq, float scaling,
          RopeStyle style, cudaStream_t stream) {
  require(rot_dim % 2 == 0 && rot_dim <= head_dim, "cuda::rope",
          "rot_dim must be even and <= head_dim, got " + std::to_string(rot_dim));
  require(row_stride >= n_heads * head_dim, "cuda::rope",
          "row_stride smaller than n_heads * head_dim");
  require(n_tokens <= 65535, "cuda::rope", "at most 65535 tokens per launch");
  const int64_t half = rot_dim / 2;
  if (n_tokens == 0 || half == 0) return;
  const dim3 grid(
      static_cast<unsigned>(std::min<int64_t>((n_heads * half + kThreads - 1) / kThreads, 64)),
      static_cast<unsigned>(n_tokens));
  if (style == RopeStyle::kHalf) {
    rope_kernel<RopeStyle::kHalf><<<grid, kThreads, 0, stream>>>(x, row_stride, n_heads, head_dim,
                                                                 half, pos, inv_freq, scaling);
  } else {
    rope_kernel<RopeStyle::kInterleaved><<<grid, kThreads, 0, stream>>>(
        x, row_stride, n_heads, head_dim, half, pos, inv_freq, scaling);
  }
  TANDEM_CUDA_CHECK_LAUNCH("rope_kernel");
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return;
  silu_mul_kernel<<<elementwise_grid(n), kThreads, 0, stream>>>(gate, up, n, out);
  TANDEM_CUDA_CHECK_LAUNCH("silu_mul_kernel");
}

void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return;
  gelu_tanh_mul_kernel<<<elementwise_grid(n), kThreads, 0, stream>>>(gate, up, n, out);
  TANDEM_CUDA_CHECK_LAUNCH("gelu_tanh_mul_kernel");
}

void process_logits(float* x, int64_t n, float softcap, float temperature, cudaStream_t stream) {
  require(temperature >= 0.0f && std::isfinite(temperature), "cuda::process_logits",
          "temperature must be finite and >= 0");
  if (n == 0 || (softcap <= 0.0f && temperature == 0.0f)) return;
  process_logits_kernel<<<elementwise_grid(n), kThreads, 0, stream>>>(x, n, softcap, temperature);
  TANDEM_CUDA_CHECK_LAUNCH("process_logits_kernel");
}

void convert_f32(const float* x, int64_t n, DType to, void* out, cudaStream_t stream) {
  require(to == DType::kBF16 || to == DType::kF16, "cuda::convert_f32",
          "target must be BF16 or F16, got " + std::string(dtype_name(to)));
  if (n == 0) return;
  if (to == DType::kBF16) {
    convert_kernel<true><<<elementwise_grid(n), kThreads, 0, stream>>>(x, n, out);
  } else {
    convert_kernel<false><<<elementwise_grid(n), kThreads, 0, stream>>>(x, n, out);
  }
  TANDEM_CUDA_CHECK_LAUNCH("convert_kernel");
}

}  // namespace tandem::kernels::cuda
