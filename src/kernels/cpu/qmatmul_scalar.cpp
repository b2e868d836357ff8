// Scalar reference for the quantized matmul (kernels/cpu/qmatmul.h): the
// integer dot product of each weight block with its activation block is exact;
// blocks are then combined in float32. The SIMD backends are tested against it.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "kernels/cpu/qmatmul.h"
#include "tensor/ggml_quant.h"

namespace tandem::kernels {

void QuantizedActs::resize(int64_t rows, int64_t cols, int64_t block_size) {
  m = rows;
  k = cols;
  block = block_size;
  const auto nq = static_cast<size_t>(rows * cols);
  if (nq > cap_q_) {
    q.resize(nq);
    d.resize(nq / 32);
    s.resize(nq / 16);
    cap_q_ = nq;
  }
}

void quantize_acts_scalar(const float* x, int64_t i0, int64_t i1, QuantizedActs& xa) {
  const int64_t k = xa.k, bs = xa.block;
  for (int64_t i = i0; i < i1; ++i) {
    const float* xr = x + i * k;
    int8_t* q = xa.q.data() + i * k;
    for (int64_t b = 0; b < k / bs; ++b) {
      float amax = 0.0f;
      for (int64_t j = 0; j < bs; ++j) amax = std::max(amax, std::fabs(xr[bs * b + j]));
      const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
      xa.d[static_cast<size_t>(i * (k / bs) + b)] = amax / 127.0f;
      for (int64_t g = bs * b / 16; g < bs * (b + 1) / 16; ++g) {
        int sum = 0;
        for (int64_t j = 16 * g; j < 16 * g + 16; ++j) {
          // nearbyint: round half to even, as the SIMD conversions do.
          const int v = static_cast<int>(std::nearbyint(xr[j] * id));
          q[j] = static_cast<int8_t>(v);
          sum += v;
        }
        xa.s[static_cast<size_t>(i * (k / 16) + g)] = static_cast<int16_t>(sum);
      }
    }
  }
}

namespace {

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return f16_to_f32(h);
}

int dot32(const uint8_t* u, const int8_t* x) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += static_cast<int>(u[j]) * x[j];
  return s;
}

// One weight row against one activation row.
// xd: one scale per activation block (32 values for Q8_0/Q4_0/Q5_0, 256 for the K-quants).
float row_dot(const uint8_t* w, DType t, const int8_t* xq, const float* xd, const int16_t* xs, int64_t k) {
  float acc = 0.0f;
  uint8_t u[32];
  switch (t) {
    case DType::kQ8_0:
      for (int64_t b = 0; b < k / 32; ++b, w += 34) {
        int s = 0;
        for (int j = 0; j < 32; ++j) s += static_cast<int8_t>(w[2 + j]) * xq[32 * b + j];
        acc += half_at(w) * xd[b] * static_cast<float>(s);
      }
      return acc;
    case DType::kQ4_0:
    case DType::kQ5_0: {
      const bool five = t == DType::kQ5_0;
      const int offset = five ? 16 : 8;
      const int64_t bytes = five ? 22 : 18;
      for (int64_t b = 0; b < k / 32; ++b, w += bytes) {
        const uint8_t* qs = w + (five ? 6 : 2);
        uint32_t qh = 0;
        if (five) std::memcpy(&qh, w + 2, 4);
        for (int j = 0; j < 16; ++j) {
          u[j] = static_cast<uint8_t>((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4));
          u[j + 16] = static_cast<uint8_t>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
        }
        const int sum = xs[2 * b] + xs[2 * b + 1];
        acc += half_at(w) * xd[b] * static_cast<float>(dot32(u, xq + 32 * b) - offset * sum);
      }
      return acc;
    }
    case DType::kQ4_K:
      for (int64_t sb = 0; sb < k / 256; ++sb, w += 144) {
        const float d = half_at(w), dmin = half_at(w + 2);
        const uint8_t* sc = w + 4;
        const uint8_t* qs = w + 16;
        for (int j = 0; j < 8; ++j) {
          int scale, min;
          q4_k_scale_min(j, sc, scale, min);
          for (int l = 0; l < 32; ++l) u[l] = static_cast<uint8_t>((qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0F);
          const int64_t blk = sb * 8 + j;  // 32-value block; the activation scale is per super-block
          const int sum = xs[2 * blk] + xs[2 * blk + 1];
          acc += xd[sb] * (d * static_cast<float>(scale) * static_cast<float>(dot32(u, xq + 32 * blk)) -
                           dmin * static_cast<float>(min) * static_cast<float>(sum));
        }
      }
      return acc;
    case DType::kQ6_K:
      for (int64_t sb = 0; sb < k / 256; ++sb, w += 210) {
        const float d = half_at(w + 208);
        const auto* sc = reinterpret_cast<const int8_t*>(w + 192);
        for (int g = 0; g < 8; ++g) {  // 32 values: half g/4, group g%4
          const int half = g / 4, group = g % 4;
          const uint8_t* ql = w + 64 * half;
          const uint8_t* qh = w + 128 + 32 * half;
          for (int l = 0; l < 32; ++l) {
            const int low = (ql[l + 32 * (group % 2)] >> (4 * (group / 2))) & 0x0F;
            u[l] = static_cast<uint8_t>(low | (((qh[l] >> (2 * group)) & 3) << 4));
          }
          const int64_t blk = sb * 8 + g;
          int s = 0;
          for (int h = 0; h < 2; ++h) {
            int part = 0;
            for (int l = 16 * h; l < 16 * h + 16; ++l) part += static_cast<int>(u[l]) * xq[32 * blk + l];
            s += sc[2 * g + h] * (part - 32 * xs[2 * blk + h]);
          }
          acc += d * xd[sb] * static_cast<float>(s);
        }
      }
      return acc;
    default:
      throw Error("qmatmul: weight type " + std::string(dtype_name(t)) + " is not block-quantized");
  }
}

}  // namespace

void qmatmul_rows_scalar(const QuantizedActs& xa, const void* w, DType wtype, int64_t r0, int64_t r1, float* y,
                         int64_t ldy) {
  const int64_t k = xa.k;
  const size_t row_bytes = dtype_row_bytes(wtype, k);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* wr = static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * row_bytes;
    for (int64_t i = 0; i < xa.m; ++i) {
      y[i * ldy + r] =
          row_dot(wr, wtype, xa.q.data() + i * k, xa.d.data() + i * (k / xa.block), xa.s.data() + i * (k / 16), k);
    }
  }
}

}  // namespace tandem::kernels
