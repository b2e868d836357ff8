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

namespace {

struct Table {
  float (*dot)(const float*, const float*, int64_t);
  void (*axpy)(float, const float*, float*, int64_t);
  void (*silu_mul)(const float*, const float*, int64_t, float*);
};

const Table& table() {
  static const Table t = active_isa() >= Isa::kAvx2 ? Table{dot_avx2, axpy_avx2, silu_mul_avx2}
                                                    : Table{dot_scalar, axpy_scalar, silu_mul_scalar};
  return t;
}

}  // namespace

float dot(const float* a, const float* b, int64_t n) { return table().dot(a, b, n); }
void axpy(float a, const float* x, float* y, int64_t n) { table().axpy(a, x, y, n); }
void silu_mul(const float* gate, const float* up, int64_t n, float* out) { table().silu_mul(gate, up, n, out); }

}  // namespace tandem::kernels::vec
