#include "kernels/cpu/repack.h"

#include <cstring>

#include "base/error.h"
#include "kernels/cpu/matmul.h"

namespace tandem::kernels {

namespace {

constexpr int64_t kBlockBytes = 34;  // Q8_0: f16 scale + 32 int8

size_t group_bytes(int64_t k) { return static_cast<size_t>(k / 32) * kPackRows * kBlockBytes; }

}  // namespace

bool can_pack(DType t, int64_t n, int64_t k) { return t == DType::kQ8_0 && n % kPackRows == 0 && k % 32 == 0; }

DType packed_type(DType t) {
  TANDEM_CHECK(t == DType::kQ8_0, "packed_type: no interleaved form of " + std::string(dtype_name(t)));
  return DType::kQ8_0x16;
}

void pack_q8_0x16(const uint8_t* src, int64_t n, int64_t k, uint8_t* dst) {
  TANDEM_CHECK(can_pack(DType::kQ8_0, n, k), "pack_q8_0x16: shape not packable");
  const int64_t nb = k / 32;
  const size_t row_bytes = static_cast<size_t>(nb) * kBlockBytes;
  for (int64_t g = 0; g < n / kPackRows; ++g) {
    uint8_t* out = dst + static_cast<size_t>(g) * group_bytes(k);
    uint8_t* scales = out;
    uint8_t* quants = out + 32 * nb;
    for (int64_t j = 0; j < kPackRows; ++j) {
      const uint8_t* row = src + static_cast<size_t>(g * kPackRows + j) * row_bytes;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kBlockBytes;
        std::memcpy(scales + 32 * b + 2 * j, blk, 2);
        for (int64_t c = 0; c < 8; ++c) {
          for (int64_t t = 0; t < 4; ++t) {
            quants[512 * b + 64 * c + 4 * j + t] = static_cast<uint8_t>(blk[2 + 4 * c + t] ^ 0x80u);
          }
        }
      }
    }
  }
}

void unpack_group_q8_0x16(const void* w, int64_t k, int64_t g, uint8_t* dst) {
  const int64_t nb = k / 32;
  const auto* in = static_cast<const uint8_t*>(w) + static_cast<size_t>(g) * group_bytes(k);
  const uint8_t* scales = in;
  const uint8_t* quants = in + 32 * nb;
  const size_t row_bytes = static_cast<size_t>(nb) * kBlockBytes;
  for (int64_t j = 0; j < kPackRows; ++j) {
    uint8_t* row = dst + static_cast<size_t>(j) * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = row + b * kBlockBytes;
      std::memcpy(blk, scales + 32 * b + 2 * j, 2);
      for (int64_t c = 0; c < 8; ++c) {
        for (int64_t t = 0; t < 4; ++t) {
          blk[2 + 4 * c + t] = static_cast<uint8_t>(quants[512 * b + 64 * c + 4 * j + t] ^ 0x80u);
        }
      }
    }
  }
}

void matrix_row_to_f32(const TensorView& w, int64_t r, float* dst) {
  const int64_t k = w.dim(1);
  if (w.dtype != DType::kQ8_0x16) {
    to_f32(w.row(r), w.dtype, k, dst);
    return;
  }
  // Gather the one row's blocks (the embedding lookup of a tied head: a few rows per step).
  const int64_t nb = k / 32, g = r / kPackRows, j = r % kPackRows;
  const auto* in = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(g) * group_bytes(k);
  const uint8_t* quants = in + 32 * nb;
  uint8_t blk[kBlockBytes];
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(blk, in + 32 * b + 2 * j, 2);
    for (int64_t c = 0; c < 8; ++c) {
      for (int64_t t = 0; t < 4; ++t) {
        blk[2 + 4 * c + t] = static_cast<uint8_t>(quants[512 * b + 64 * c + 4 * j + t] ^ 0x80u);
      }
    }
    to_f32(blk, DType::kQ8_0, 32, dst + 32 * b);
  }
}

}  // namespace tandem::kernels
