#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace tandem::kernels {

void to_f32(const void* src, DType type, int64_t n, float* dst) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      throw Error("to_f32: unsupported dtype " + std::string(dtype_name(type)));
  }
}

void matmul_with(Isa isa, const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy,
                 ThreadPool& pool) {
  TANDEM_CHECK(w.rank() == 2, "matmul weight must be rank 2");
  TANDEM_CHECK(w.dim(1) == k, "matmul inner dimensions differ");
  TANDEM_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16,
               "matmul weight dtype must be F32, BF16 or F16");
  const int64_t n = w.dim(0);
  TANDEM_CHECK(ldy >= n, "matmul output stride too small");
  MatmulRowsFn fn = isa == Isa::kAvx2 ? matmul_rows_avx2 : matmul_rows_scalar;
  // Tasks of at least ~64K multiply-adds amortize the scheduling; the pool
  // splits larger matrices into a few ranges per thread.
  int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, m * k));
  pool.parallel_for(
      n, [&](int64_t r0, int64_t r1) { fn(x, m, k, w.data, w.dtype, r0, r1, y, ldy); }, grain);
}

void matmul(const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy, ThreadPool& pool) {
  matmul_with(active_isa(), x, m, k, w, y, ldy, pool);
}

}  // namespace tandem::kernels
