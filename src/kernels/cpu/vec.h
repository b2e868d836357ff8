// Small float32 vector primitives the attention and activation code calls in
// inner loops, dispatched once to the active ISA (kernels/cpu/isa.h). The
// default translation unit is compiled for baseline x86-64 (SSE2), where
// float reductions do not vectorize without reassociation; these do.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tandem::kernels::vec {

// sum_i a[i] * b[i]
float dot(const float* a, const float* b, int64_t n);
// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, int64_t n);
// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g))
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// A checksum of n bytes (n % 64 == 0) that reads them as fast as the core can:
// the loop behind the read-bandwidth measurement of `tandem bench`.
uint64_t sum_bytes(const void* p, size_t n);

// The implementations behind the dispatch (tests compare them).
uint64_t sum_bytes_scalar(const void* p, size_t n);
uint64_t sum_bytes_avx2(const void* p, size_t n);
float dot_scalar(const float* a, const float* b, int64_t n);
void axpy_scalar(float a, const float* x, float* y, int64_t n);
void silu_mul_scalar(const float* gate, const float* up, int64_t n, float* out);
float dot_avx2(const float* a, const float* b, int64_t n);
void axpy_avx2(float a, const float* x, float* y, int64_t n);
void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* out);

}  // namespace tandem::kernels::vec
