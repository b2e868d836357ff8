// BF16/F16 GEMM through cuBLAS (kernels.h). Row-major y[m, n] = x[m, k] · w[n, k]ᵀ
// is, read column-major, yᵀ[n, m] = w[n, k] · xᵀ[k, m]: w stored [n, k] row-major
// is a k×n column-major matrix used transposed, x a k×m one used as is.
#include <cublas_v2.h>

#include "kernels/cuda/blas_api.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/kernels.h"

namespace tandem::kernels::cuda {

void gemm(const BlasHandle& blas, const void* w, DType wtype, const void* x, int64_t m, int64_t n,
          int64_t k, float* y) {
  require(wtype == DType::kBF16 || wtype == DType::kF16, "cuda::gemm",
          "weights must be BF16 or F16, got " + std::string(dtype_name(wtype)));
  require(m <= 0x7fffffff && n <= 0x7fffffff && k <= 0x7fffffff, "cuda::gemm",
          "dimension over 2^31");
  if (m == 0 || n == 0) return;
  const cudaDataType_t t = wtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
  const float alpha = 1.0f, beta = 0.0f;
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  TANDEM_CUBLAS_CHECK(blas_api().cublasGemmEx(
      static_cast<cublasHandle_t>(blas.get()), CUBLAS_OP_T, CUBLAS_OP_N, ni, mi, ki, &alpha, w, t,
      ki, x, t, ki, &beta, y, CUDA_R_32F, ni, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace tandem::kernels::cuda
