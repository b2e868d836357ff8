// Checked CUDA and cuBLAS calls for the .cu files: a failing status becomes a
// tandem::Error naming the call, the runtime's message and the source line.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "base/error.h"

namespace tandem::kernels::cuda {

[[noreturn]] inline void throw_cuda_error(const char* call, const std::string& what,
                                          const char* file, int line) {
  throw Error(std::string(call) + " failed: " + what + " (" + file + ":" + std::to_string(line) +
              ")");
}

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess)
    throw_cuda_error(call, std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e), file,
                     line);
}

// The status's name from the loaded cuBLAS (blas_api.cuh), or its number.
std::string cublas_status_text(cublasStatus_t s);

inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_cuda_error(call, cublas_status_text(s), file, line);
}

}  // namespace tandem::kernels::cuda

#define TANDEM_CUDA_CHECK(call) \
  ::tandem::kernels::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define TANDEM_CUBLAS_CHECK(call) \
  ::tandem::kernels::cuda::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: configuration errors surface at once, faults at the next sync.
#define TANDEM_CUDA_CHECK_LAUNCH(name) \
  ::tandem::kernels::cuda::check_cuda(cudaGetLastError(), name " launch", __FILE__, __LINE__)
