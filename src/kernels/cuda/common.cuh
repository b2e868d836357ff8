// Helpers shared by the kernels of this folder.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "base/error.h"
#include "tensor/dtype.h"

namespace tandem::kernels::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// `#pragma unroll` for __host__ __device__ code: the host compiler does not know it.
#ifdef __CUDA_ARCH__
#define TANDEM_UNROLL _Pragma("unroll")
#else
#define TANDEM_UNROLL
#endif

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Host and device: the host side lets tests run a kernel's per-lane code on the
// CPU (gemv_emulated), with tensor/dtype.h's conversions.
__host__ __device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
#else
  return ::tandem::bf16_to_f32(h);
#endif
}
__host__ __device__ __forceinline__ float f16_bits_to_f32(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));
#else
  return ::tandem::f16_to_f32(h);
#endif
}

// Grid size for n items at `per_block` per block, checked against the limit of gridDim.x.
inline unsigned grid_for(int64_t n, int64_t per_block, const char* what) {
  const int64_t g = (n + per_block - 1) / per_block;
  if (g > 0x7fffffff)
    throw Error(std::string(what) + ": " + std::to_string(n) + " items is too many for one launch");
  return static_cast<unsigned>(g);
}

inline void require(bool ok, const char* what, const std::string& msg) {
  if (!ok) throw Error(std::string(what) + ": " + msg);
}

}  // namespace tandem::kernels::cuda
