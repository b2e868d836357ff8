// cuBLAS, opened on first use with dlopen instead of linked: loading
// libcublasLt costs about 0.4 s and 200 MB of resident memory per process
// (measured on a CPU-only machine), which every run of tandem and every test
// process would otherwise pay whether or not it touches a GPU.
#pragma once

#include <cublas_v2.h>

namespace tandem::kernels::cuda {

struct BlasApi {
  cublasStatus_t (*cublasCreate)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*cublasDestroy)(cublasHandle_t) = nullptr;
  cublasStatus_t (*cublasSetStream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*cublasGemmEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                 int, const void*, const void*, cudaDataType, int, const void*,
                                 cudaDataType, int, const void*, void*, cudaDataType, int,
                                 cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  const char* (*cublasGetStatusString)(cublasStatus_t) = nullptr;
};

// The loaded functions; throws tandem::Error naming the library and dlerror()
// when libcublas cannot be opened. Loaded once per process and never unloaded
// (an immutable table, safe to read from any thread).
const BlasApi& blas_api();

}  // namespace tandem::kernels::cuda
