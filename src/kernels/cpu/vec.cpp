#include "kernels/cpu/vec.h"

#include <cmath>

#include "kernels/cpu/isa.h"

namespace tandem::kernels::vec {

float dot_scalar(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_scalar(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void silu_mul_scalar(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

uint64_t sum_bytes_scalar(const void* p, size_t n) {
  const auto* w = static_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= n / 8; i += 4) {
    s0 += w[i];
    s1 += w[i + 1];
    s2 += w[i + 2];
    s3 += w[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

namespace {

struct Table {
  float (*dot)(const float*, const float*, int64_t);
  void (*axpy)(float, const float*, float*, int64_t);
  void (*silu_mul)(const float*, const float*, int64_t, float*);
  uint64_t (*sum_bytes)(const void*, size_t);
};

const Table& table() {
  static const Table t = active_isa() >= Isa::kAvx2 ? Table{dot_avx2, axpy_avx2, silu_mul_avx2, sum_bytes_avx2}
                                                    : Table{dot_scalar, axpy_scalar, silu_mul_scalar, sum_bytes_scalar};
  return t;
}

}  // namespace

float dot(const float* a, const float* b, int64_t n) { return table().dot(a, b, n); }
void axpy(float a, const float* x, float* y, int64_t n) { table().axpy(a, x, y, n); }
void silu_mul(const float* gate, const float* up, int64_t n, float* out) { table().silu_mul(gate, up, n, out); }
uint64_t sum_bytes(const void* p, size_t n) { return table().sum_bytes(p, n); }

}  // namespace tandem::kernels::vec
