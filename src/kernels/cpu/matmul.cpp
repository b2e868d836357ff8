#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/repack.h"
#include "tensor/ggml_quant.h"

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
      TANDEM_CHECK(dtype_unpacked(type) == type, "to_f32: interleaved rows are not contiguous (use matrix_row_to_f32)");
      if (dtype_is_quantized(type)) {
        dequantize_row(*ggml_from_dtype(type), src, dst, n);
        return;
      }
      throw Error("to_f32: unsupported dtype " + std::string(dtype_name(type)));
  }
}

void Bf16Acts::resize(int64_t rows, int64_t cols) {
  m = rows;
  k = cols;
  kp = (cols + 31) / 32 * 32;
  const auto n = static_cast<size_t>(rows * kp);
  if (n > cap_) {
    hi.resize(n);
    lo.resize(n);
    cap_ = n;
  }
}

namespace {

// BF16 weights on AVX512_BF16: x is split into bf16 halves once per call (on
// the caller's thread-local buffer, as qmatmul_with does), then the weight rows
// are shared out as usual. Decode (m = 1) takes it too: it streams the weights
// at least as fast as the AVX2 path (docs/architecture.md).
void matmul_bf16_avx512(const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy,
                        ThreadPool& pool, Bf16Activations acts) {
  thread_local Bf16Acts tls_acts;
  Bf16Acts& xa = tls_acts;
  xa.resize(m, k);
  xa.split = acts == Bf16Activations::kSplit;
  pool.parallel_for(
      m, [&](int64_t i0, int64_t i1) { bf16_acts_avx512(x, i0, i1, xa); },
      std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, k)));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, m * k));
  pool.parallel_for(
      w.dim(0), [&](int64_t r0, int64_t r1) { matmul_rows_bf16_avx512(xa, w.data, r0, r1, y, ldy); }, grain);
}

void qmatmul_with(Isa isa, const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy,
                  ThreadPool& pool) {
  const int64_t n = w.dim(0);
  TANDEM_CHECK(k % dtype_block(w.dtype) == 0, "matmul: inner dimension " + std::to_string(k) +
                                                  " is not a multiple of the " + std::string(dtype_name(w.dtype)) +
                                                  " block size");
  QuantizeActsFn quantize = quantize_acts_scalar;
  QMatmulRowsFn rows = qmatmul_rows_scalar;
  if (isa == Isa::kAvx2) {
    quantize = quantize_acts_avx2;
    rows = qmatmul_rows_avx2;
  } else if (isa == Isa::kAvx512) {
    quantize = quantize_acts_avx512;
    rows = qmatmul_rows_avx512;
  }
  // One buffer per calling thread, reused across calls; workers only read it.
  // (The lambdas must capture this reference: naming the thread_local itself
  // inside them would mean each worker's own, empty instance.)
  thread_local QuantizedActs tls_acts;
  QuantizedActs& xa = tls_acts;
  xa.resize(m, k, QuantizedActs::block_for(w.dtype));
  pool.parallel_for(
      m, [&](int64_t i0, int64_t i1) { quantize(x, i0, i1, xa); },
      std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, k)));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, m * k));
  const DType plain = dtype_unpacked(w.dtype);
  if (plain == w.dtype) {
    pool.parallel_for(
        n, [&](int64_t r0, int64_t r1) { rows(xa, w.data, w.dtype, r0, r1, y, ldy); }, grain);
    return;
  }
  // Interleaved weights (kernels/cpu/repack.h) are split by whole groups of 16
  // rows. Only the AVX-512 backend has kernels for them; the others (forced
  // by TANDEM_FORCE_ISA, or the scalar reference in tests) get each group
  // back as 16 GGUF rows.
  TANDEM_CHECK(n % kPackRows == 0, "matmul: interleaved weight rows not a multiple of 16");
  const int64_t groups = n / kPackRows;
  // A quarter of the usual grain: the pool's claims shrink (a quarter of a
  // segment's rest, half of it when stolen), so small last ranges let both
  // threads finish together.
  const int64_t ggrain = std::max<int64_t>(1, grain / (4 * kPackRows));
  if (isa == Isa::kAvx512) {
    pool.parallel_for(
        groups, [&](int64_t g0, int64_t g1) { rows(xa, w.data, w.dtype, g0 * kPackRows, g1 * kPackRows, y, ldy); },
        ggrain);
    return;
  }
  pool.parallel_for(
      groups,
      [&](int64_t g0, int64_t g1) {
        std::vector<uint8_t> buf(dtype_row_bytes(plain, k) * kPackRows);
        for (int64_t g = g0; g < g1; ++g) {
          unpack_group(w.dtype, w.data, k, g, buf.data());
          rows(xa, buf.data(), plain, 0, kPackRows, y + g * kPackRows, ldy);
        }
      },
      ggrain);
}

}  // namespace

void matmul_with(Isa isa, const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy,
                 ThreadPool& pool, Bf16Activations acts) {
  TANDEM_CHECK(w.rank() == 2, "matmul weight must be rank 2");
  TANDEM_CHECK(w.dim(1) == k, "matmul inner dimensions differ");
  const int64_t n = w.dim(0);
  TANDEM_CHECK(ldy >= n, "matmul output stride too small");
  if (dtype_is_quantized(w.dtype)) {
    qmatmul_with(isa, x, m, k, w, y, ldy, pool);
    return;
  }
  TANDEM_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16,
               "matmul weight dtype must be F32, BF16, F16 or block-quantized");
  if (w.dtype == DType::kBF16 && isa == Isa::kAvx512 && cpu_has_avx512_bf16()) {
    matmul_bf16_avx512(x, m, k, w, y, ldy, pool, acts);
    return;
  }
  // Otherwise the AVX-512 level adds nothing to the float kernels (kernels/cpu/isa.h).
  MatmulRowsFn fn = isa == Isa::kScalar ? matmul_rows_scalar : matmul_rows_avx2;
  // Tasks of at least ~64K multiply-adds amortize the scheduling; the pool
  // splits larger matrices into a few ranges per thread.
  int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, m * k));
  pool.parallel_for(
      n, [&](int64_t r0, int64_t r1) { fn(x, m, k, w.data, w.dtype, r0, r1, y, ldy); }, grain);
}

void matmul(const float* x, int64_t m, int64_t k, const TensorView& w, float* y, int64_t ldy, ThreadPool& pool,
            Bf16Activations acts) {
  matmul_with(active_isa(), x, m, k, w, y, ldy, pool, acts);
}

}  // namespace tandem::kernels
