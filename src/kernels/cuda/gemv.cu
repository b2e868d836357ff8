// Decode GEMV (kernels.h): one warp per weight row, computing that row's dot
// product with all m (<= 8) activation rows, so each weight byte is read once.
// Quantized blocks are dequantized in registers, with GGUF's layouts
// (tensor/ggml_quant.cpp):
//   Q8_0 (34 bytes / 32 values): f16 d, int8 q[32]; x = d * q.
//   Q4_K (144 bytes / 256 values): f16 d, f16 dmin, 12 bytes of eight 6-bit
//     (scale, min) pairs, 128 bytes of nibbles; sub-block s (32 values) uses the
//     low nibbles of bytes 32*(s/2).. for even s, the high ones for odd s;
//     x = d * scale_s * q - dmin * min_s.
// Loads are laid out so a warp reads each block's bytes contiguously.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.h"

namespace tandem::kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxM = static_cast<int>(kGemvMaxM);

__host__ __device__ __forceinline__ float load_f16(const uint8_t* p) {
  return f16_bits_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

// Q8_0: each step covers 4 blocks; lane l takes 4 values (l % 8) * 4.. of block l / 8.
__host__ __device__ void dot_q8_0(const uint8_t* wr, const float* x, int m, int64_t k, int lane,
                                  float* acc) {
  const int64_t nb = k / 32;
  const int part = lane % 8;
  for (int64_t b = lane / 8; b < nb; b += 4) {
    const uint8_t* blk = wr + b * 34;
    const float d = load_f16(blk);
    float q[4];
    TANDEM_UNROLL
    for (int t = 0; t < 4; ++t)
      q[t] = static_cast<float>(static_cast<int8_t>(blk[2 + part * 4 + t]));
    const int64_t e0 = b * 32 + part * 4;
    TANDEM_UNROLL
    for (int i = 0; i < kMaxM; ++i) {
      if (i < m) {
        const float* xi = x + i * k + e0;
        acc[i] += d * (q[0] * xi[0] + q[1] * xi[1] + q[2] * xi[2] + q[3] * xi[3]);
      }
    }
  }
}

__host__ __device__ __forceinline__ void scale_min_k4(int j, const uint8_t* s, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K: one super-block per step; lane l reads nibble bytes 4l..4l+3 (one 32-bit
// load, the 128 bytes of the block contiguous over the warp). They all belong to
// group g = l / 8: low nibbles are sub-block 2g, high nibbles sub-block 2g + 1.
__host__ __device__ void dot_q4_k(const uint8_t* wr, const float* x, int m, int64_t k, int lane,
                                  float* acc) {
  const int64_t nb = k / 256;
  const int g = lane / 8;
  const int jj = (lane % 8) * 4;  // offset inside the 32-value sub-blocks
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wr + b * 144;
    const float d = load_f16(blk), dmin = load_f16(blk + 2);
    int sc_lo, mn_lo, sc_hi, mn_hi;
    scale_min_k4(2 * g, blk + 4, sc_lo, mn_lo);
    scale_min_k4(2 * g + 1, blk + 4, sc_hi, mn_hi);
    const uint32_t qs = *reinterpret_cast<const uint32_t*>(blk + 16 + 4 * lane);
    float lo[4], hi[4];
    TANDEM_UNROLL
    for (int t = 0; t < 4; ++t) {
      lo[t] = static_cast<float>((qs >> (8 * t)) & 0x0F);
      hi[t] = static_cast<float>((qs >> (8 * t + 4)) & 0x0F);
    }
    const float ds_lo = d * static_cast<float>(sc_lo), dm_lo = dmin * static_cast<float>(mn_lo);
    const float ds_hi = d * static_cast<float>(sc_hi), dm_hi = dmin * static_cast<float>(mn_hi);
    const int64_t e_lo = b * 256 + 64 * g + jj, e_hi = e_lo + 32;
    TANDEM_UNROLL
    for (int i = 0; i < kMaxM; ++i) {
      if (i < m) {
        const float* xl = x + i * k + e_lo;
        const float* xh = x + i * k + e_hi;
        float dot_lo = 0.0f, sum_lo = 0.0f, dot_hi = 0.0f, sum_hi = 0.0f;
        TANDEM_UNROLL
        for (int t = 0; t < 4; ++t) {
          dot_lo += lo[t] * xl[t];
          sum_lo += xl[t];
          dot_hi += hi[t] * xh[t];
          sum_hi += xh[t];
        }
        acc[i] += ds_lo * dot_lo - dm_lo * sum_lo + ds_hi * dot_hi - dm_hi * sum_hi;
      }
    }
  }
}

// BF16 / F16: with k % 8 == 0 each lane reads 8 values (16 bytes) per step.
template <bool kBf16>
__host__ __device__ __forceinline__ float half_bits(uint16_t h) {
  return kBf16 ? bf16_bits_to_f32(h) : f16_bits_to_f32(h);
}

template <bool kBf16>
__host__ __device__ void dot_16bit(const uint8_t* wr, const float* x, int m, int64_t k, int lane,
                                   float* acc) {
  const uint16_t* w = reinterpret_cast<const uint16_t*>(wr);
  if (k % 8 == 0) {
    for (int64_t e = int64_t(lane) * 8; e < k; e += 256) {
      const uint4 raw = *reinterpret_cast<const uint4*>(w + e);
      const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
      float v[8];
      TANDEM_UNROLL
      for (int t = 0; t < 4; ++t) {
        v[2 * t] = half_bits<kBf16>(static_cast<uint16_t>(words[t] & 0xFFFF));
        v[2 * t + 1] = half_bits<kBf16>(static_cast<uint16_t>(words[t] >> 16));
      }
      TANDEM_UNROLL
      for (int i = 0; i < kMaxM; ++i) {
        if (i < m) {
          const float* xi = x + i * k + e;
          float s = 0.0f;
          TANDEM_UNROLL
          for (int t = 0; t < 8; ++t) s += v[t] * xi[t];
          acc[i] += s;
        }
      }
    }
  } else {
    for (int64_t e = lane; e < k; e += 32) {
      const float v = half_bits<kBf16>(w[e]);
      TANDEM_UNROLL
      for (int i = 0; i < kMaxM; ++i) {
        if (i < m) acc[i] += v * x[i * k + e];
      }
    }
  }
}

// One lane's partial sums for weight row wr against the m rows of x.
__host__ __device__ void lane_dot(DType t, const uint8_t* wr, const float* x, int m, int64_t k,
                                  int lane, float* acc) {
  if (t == DType::kQ8_0) {
    dot_q8_0(wr, x, m, k, lane, acc);
  } else if (t == DType::kQ4_K) {
    dot_q4_k(wr, x, m, k, lane, acc);
  } else if (t == DType::kBF16) {
    dot_16bit<true>(wr, x, m, k, lane, acc);
  } else {
    dot_16bit<false>(wr, x, m, k, lane, acc);
  }
}

template <DType kType>
__global__ void gemv_kernel(const uint8_t* w, size_t row_bytes, const float* x, int m, int64_t n,
                            int64_t k, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= n) return;
  const uint8_t* wr = w + row * row_bytes;
  float acc[kMaxM] = {};
  if constexpr (kType == DType::kQ8_0) {
    dot_q8_0(wr, x, m, k, lane, acc);
  } else if constexpr (kType == DType::kQ4_K) {
    dot_q4_k(wr, x, m, k, lane, acc);
  } else {
    dot_16bit<kType == DType::kBF16>(wr, x, m, k, lane, acc);
  }
  TANDEM_UNROLL
  for (int i = 0; i < kMaxM; ++i) {
    if (i < m) {
      const float s = warp_sum(acc[i]);
      if (lane == 0) y[i * n + row] = s;
    }
  }
}

void check_gemv_args(const char* what, const void* w, DType wtype, int64_t m, int64_t k) {
  require(wtype == DType::kBF16 || wtype == DType::kF16 || wtype == DType::kQ8_0 ||
              wtype == DType::kQ4_K,
          what, "weights must be BF16, F16, Q8_0 or Q4_K, got " + std::string(dtype_name(wtype)));
  require(m >= 0 && m <= kGemvMaxM, what,
          "m must be in 0.." + std::to_string(kGemvMaxM) + ", got " + std::to_string(m));
  require(k % dtype_block(wtype) == 0, what,
          "k (" + std::to_string(k) + ") is not a whole number of " +
              std::string(dtype_name(wtype)) + " blocks");
  // The vector loads need aligned rows: 16 bytes for 16-bit weights with k % 8 == 0,
  // 4 bytes for Q4_K's nibbles (144-byte blocks keep that alignment row to row).
  const auto addr = reinterpret_cast<uintptr_t>(w);
  if ((wtype == DType::kBF16 || wtype == DType::kF16) && k % 8 == 0)
    require(addr % 16 == 0, what, "w not 16-byte aligned");
  if (wtype == DType::kQ4_K) require(addr % 4 == 0, what, "w not 4-byte aligned");
}

}  // namespace

void gemv(const void* w, DType wtype, const float* x, int64_t m, int64_t n, int64_t k, float* y,
          cudaStream_t stream) {
  const char* what = "cuda::gemv";
  check_gemv_args(what, w, wtype, m, k);
  const size_t row_bytes = dtype_row_bytes(wtype, k);
  if (m == 0 || n == 0) return;
  const unsigned grid = grid_for(n, kWarpsPerBlock, what);
  const auto* wb = static_cast<const uint8_t*>(w);
  const int mi = static_cast<int>(m);
  switch (wtype) {
    case DType::kQ8_0:
      gemv_kernel<DType::kQ8_0>
          <<<grid, 32 * kWarpsPerBlock, 0, stream>>>(wb, row_bytes, x, mi, n, k, y);
      break;
    case DType::kQ4_K:
      gemv_kernel<DType::kQ4_K>
          <<<grid, 32 * kWarpsPerBlock, 0, stream>>>(wb, row_bytes, x, mi, n, k, y);
      break;
    case DType::kBF16:
      gemv_kernel<DType::kBF16>
          <<<grid, 32 * kWarpsPerBlock, 0, stream>>>(wb, row_bytes, x, mi, n, k, y);
      break;
    default:
      gemv_kernel<DType::kF16>
          <<<grid, 32 * kWarpsPerBlock, 0, stream>>>(wb, row_bytes, x, mi, n, k, y);
      break;
  }
  TANDEM_CUDA_CHECK_LAUNCH("gemv_kernel");
}

void gemv_emulated(const void* w, DType wtype, const float* x, int64_t m, int64_t n, int64_t k,
                   float* y) {
  check_gemv_args("cuda::gemv_emulated", w, wtype, m, k);
  const size_t row_bytes = dtype_row_bytes(wtype, k);
  for (int64_t row = 0; row < n; ++row) {
    float sum[kMaxM] = {};
    for (int lane = 0; lane < 32; ++lane) {
      float acc[kMaxM] = {};
      lane_dot(wtype, static_cast<const uint8_t*>(w) + row * row_bytes, x, static_cast<int>(m), k,
               lane, acc);
      for (int i = 0; i < kMaxM; ++i) sum[i] += acc[i];
    }
    for (int64_t i = 0; i < m; ++i) y[i * n + row] = sum[i];
  }
}

}  // namespace tandem::kernels::cuda
