// AVX-512 (F/BW/VL) + VNNI backend of the quantized matmul (body:
// qmatmul_x86.h): the u8·s8 dot products are single vpdpbusd instructions.
#include <algorithm>

#define TANDEM_QMATMUL_VNNI 1
#include "kernels/cpu/qmatmul_x86.h"

namespace tandem::kernels {

void quantize_acts_avx512(const float* x, int64_t i0, int64_t i1, QuantizedActs& xa) {
  quantize_acts_x86(x, i0, i1, xa);
}

void qmatmul_rows_avx512(const QuantizedActs& xa, const void* w, DType wtype, int64_t r0, int64_t r1, float* y,
                         int64_t ldy) {
  qmatmul_rows_x86(xa, w, wtype, r0, r1, y, ldy);
}

}  // namespace tandem::kernels
