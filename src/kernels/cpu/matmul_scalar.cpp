// Scalar reference backend for matmul: plain loops, float32 accumulation.
#include "kernels/cpu/matmul.h"

#include <vector>

namespace tandem::kernels {

void matmul_rows_scalar(const float* x, int64_t m, int64_t k, const void* w, DType wtype, int64_t r0, int64_t r1,
                        float* y, int64_t ldy) {
  std::vector<float> row(static_cast<size_t>(k));
  const size_t row_bytes = static_cast<size_t>(k) * dtype_size(wtype);
  for (int64_t r = r0; r < r1; ++r) {
    to_f32(static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * row_bytes, wtype, k, row.data());
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * k;
      float acc = 0.0f;
      for (int64_t j = 0; j < k; ++j) acc += xi[j] * row[static_cast<size_t>(j)];
      y[i * ldy + r] = acc;
    }
  }
}

}  // namespace tandem::kernels
