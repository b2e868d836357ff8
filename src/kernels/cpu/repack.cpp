#include "kernels/cpu/repack.h"

#include <cstring>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/matmul.h"
#include "tensor/ggml_quant.h"

namespace tandem::kernels {

namespace {

size_t group_bytes(DType packed, int64_t k) { return dtype_row_bytes(packed, k) * kPackRows; }

// ---- Q8_0: 34-byte blocks of 32 ----

void pack_group_q8_0(const uint8_t* src, int64_t k, uint8_t* out) {
  const int64_t nb = k / 32;
  const size_t row_bytes = static_cast<size_t>(nb) * 34;
  for (int64_t j = 0; j < kPackRows; ++j) {
    const uint8_t* row = src + static_cast<size_t>(j) * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * 34;
      uint8_t* quants = out + q8_0x16_quants_at(b, nb);
      std::memcpy(out + q8_0x16_scales_at(b) + 2 * j, blk, 2);
      for (int64_t c = 0; c < 8; ++c) {
        for (int64_t t = 0; t < 4; ++t) {
          quants[64 * c + 4 * j + t] = static_cast<uint8_t>(blk[2 + 4 * c + t] ^ 0x80u);
        }
      }
    }
  }
}

void unpack_group_q8_0(const uint8_t* in, int64_t k, uint8_t* dst) {
  const int64_t nb = k / 32;
  const size_t row_bytes = static_cast<size_t>(nb) * 34;
  for (int64_t j = 0; j < kPackRows; ++j) {
    uint8_t* row = dst + static_cast<size_t>(j) * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = row + b * 34;
      const uint8_t* quants = in + q8_0x16_quants_at(b, nb);
      std::memcpy(blk, in + q8_0x16_scales_at(b) + 2 * j, 2);
      for (int64_t c = 0; c < 8; ++c) {
        for (int64_t t = 0; t < 4; ++t) {
          blk[2 + 4 * c + t] = static_cast<uint8_t>(quants[64 * c + 4 * j + t] ^ 0x80u);
        }
      }
    }
  }
}

// ---- Q4_K: 144-byte super-blocks of 256 (d, dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles) ----

constexpr size_t kQ4KBytes = 144, kQ4KPacked = 148 * kPackRows;

void pack_group_q4_k(const uint8_t* src, int64_t k, uint8_t* out) {
  const int64_t nsb = k / 256;
  const size_t row_bytes = static_cast<size_t>(nsb) * kQ4KBytes;
  for (int64_t s = 0; s < nsb; ++s) {
    uint8_t* o = out + static_cast<size_t>(s) * kQ4KPacked;
    for (int64_t j = 0; j < kPackRows; ++j) {
      const uint8_t* blk = src + static_cast<size_t>(j) * row_bytes + static_cast<size_t>(s) * kQ4KBytes;
      std::memcpy(o + 2 * j, blk, 2);
      std::memcpy(o + 32 + 2 * j, blk + 2, 2);
      const uint8_t* q = blk + 4;
      for (int b = 0; b < 8; ++b) {
        int sc, mn;
        q4_k_scale_min(b, q, sc, mn);
        o[64 + 16 * b + j] = static_cast<uint8_t>(sc);
        o[192 + 32 * (b / 2) + 2 * j + (b % 2)] = static_cast<uint8_t>(mn);
      }
      for (int c = 0; c < 4; ++c) {
        for (int t = 0; t < 8; ++t) std::memcpy(o + 320 + 512 * c + 64 * t + 4 * j, blk + 16 + 32 * c + 4 * t, 4);
      }
    }
  }
}

void unpack_group_q4_k(const uint8_t* in, int64_t k, uint8_t* dst) {
  const int64_t nsb = k / 256;
  const size_t row_bytes = static_cast<size_t>(nsb) * kQ4KBytes;
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* o = in + static_cast<size_t>(s) * kQ4KPacked;
    for (int64_t j = 0; j < kPackRows; ++j) {
      uint8_t* blk = dst + static_cast<size_t>(j) * row_bytes + static_cast<size_t>(s) * kQ4KBytes;
      std::memcpy(blk, o + 2 * j, 2);
      std::memcpy(blk + 2, o + 32 + 2 * j, 2);
      int sc[8], mn[8];
      for (int b = 0; b < 8; ++b) {
        sc[b] = o[64 + 16 * b + j];
        mn[b] = o[192 + 32 * (b / 2) + 2 * j + (b % 2)];
      }
      q4_k_pack_scales_mins(sc, mn, blk + 4);
      for (int c = 0; c < 4; ++c) {
        for (int t = 0; t < 8; ++t) std::memcpy(blk + 16 + 32 * c + 4 * t, o + 320 + 512 * c + 64 * t + 4 * j, 4);
      }
    }
  }
}

// ---- Q4_0 / Q5_0: 18 / 22-byte blocks of 32 (f16 d, [Q5_0: 32 high bits], 16 bytes of nibbles) ----

void pack_group_q4_q5(const uint8_t* src, int64_t k, uint8_t* out, bool five) {
  const int64_t nb = k / 32;
  const size_t in_block = five ? 22 : 18;
  const size_t row_bytes = static_cast<size_t>(nb) * in_block;
  for (int64_t b = 0; b < nb; ++b) {
    const Q4Q5x16Offsets at = q4_q5x16_block_at(b, nb, five);
    uint8_t* masks = out + at.masks;
    if (five) std::memset(masks, 0, 64);
    for (int64_t j = 0; j < kPackRows; ++j) {
      const uint8_t* blk = src + static_cast<size_t>(j) * row_bytes + static_cast<size_t>(b) * in_block;
      std::memcpy(out + at.d + 2 * j, blk, 2);
      const uint8_t* qs = blk + (five ? 6 : 2);
      for (int t = 0; t < 4; ++t) std::memcpy(out + at.nibbles + 64 * t + 4 * j, qs + 4 * t, 4);
      if (five) {
        // Bit 4j + u of chunk t's two masks: the high bit of column 4t + u
        // (low nibbles) and of column 16 + 4t + u (high nibbles) of row j.
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        for (int t = 0; t < 4; ++t) {
          uint64_t mask[2];
          std::memcpy(mask, masks + 16 * t, 16);
          for (int u = 0; u < 4; ++u) {
            mask[0] |= static_cast<uint64_t>((qh >> (4 * t + u)) & 1u) << (4 * j + u);
            mask[1] |= static_cast<uint64_t>((qh >> (16 + 4 * t + u)) & 1u) << (4 * j + u);
          }
          std::memcpy(masks + 16 * t, mask, 16);
        }
      }
    }
  }
}

void unpack_group_q4_q5(const uint8_t* in, int64_t k, uint8_t* dst, bool five) {
  const int64_t nb = k / 32;
  const size_t in_block = five ? 22 : 18;
  const size_t row_bytes = static_cast<size_t>(nb) * in_block;
  for (int64_t b = 0; b < nb; ++b) {
    const Q4Q5x16Offsets at = q4_q5x16_block_at(b, nb, five);
    for (int64_t j = 0; j < kPackRows; ++j) {
      uint8_t* blk = dst + static_cast<size_t>(j) * row_bytes + static_cast<size_t>(b) * in_block;
      std::memcpy(blk, in + at.d + 2 * j, 2);
      uint8_t* qs = blk + (five ? 6 : 2);
      for (int t = 0; t < 4; ++t) std::memcpy(qs + 4 * t, in + at.nibbles + 64 * t + 4 * j, 4);
      if (five) {
        uint32_t qh = 0;
        for (int t = 0; t < 4; ++t) {
          uint64_t mask[2];
          std::memcpy(mask, in + at.masks + 16 * t, 16);
          for (int u = 0; u < 4; ++u) {
            qh |= static_cast<uint32_t>((mask[0] >> (4 * j + u)) & 1u) << (4 * t + u);
            qh |= static_cast<uint32_t>((mask[1] >> (4 * j + u)) & 1u) << (16 + 4 * t + u);
          }
        }
        std::memcpy(blk + 2, &qh, 4);
      }
    }
  }
}

// ---- Q6_K: 210-byte super-blocks of 256 (ql[128], qh[64], int8 scales[16], f16 d) ----

constexpr size_t kQ6KBytes = 210, kQ6KPacked = 210 * kPackRows;

// The 6-bit level (0..63) of value l of a GGUF Q6_K super-block, and back.
int q6_k_level(const uint8_t* blk, int l) {
  const int g = l / 32, i = l % 32, half = g / 4, group = g % 4;
  const int low = (blk[64 * half + i + 32 * (group % 2)] >> (4 * (group / 2))) & 0x0F;
  const int high = (blk[128 + 32 * half + i] >> (2 * group)) & 3;
  return low | (high << 4);
}
void q6_k_set_level(uint8_t* blk, int l, int u) {
  const int g = l / 32, i = l % 32, half = g / 4, group = g % 4;
  blk[64 * half + i + 32 * (group % 2)] |= static_cast<uint8_t>((u & 0x0F) << (4 * (group / 2)));
  blk[128 + 32 * half + i] |= static_cast<uint8_t>((u >> 4) << (2 * group));
}

void pack_group_q6_k(const uint8_t* src, int64_t k, uint8_t* out) {
  const int64_t nsb = k / 256;
  const size_t row_bytes = static_cast<size_t>(nsb) * kQ6KBytes;
  for (int64_t s = 0; s < nsb; ++s) {
    uint8_t* o = out + static_cast<size_t>(s) * kQ6KPacked;
    std::memset(o, 0, kQ6KPacked);
    for (int64_t j = 0; j < kPackRows; ++j) {
      const uint8_t* blk = src + static_cast<size_t>(j) * row_bytes + static_cast<size_t>(s) * kQ6KBytes;
      std::memcpy(o + 2 * j, blk + 208, 2);
      for (int p = 0; p < 8; ++p) {
        o[32 + 32 * p + 2 * j] = blk[192 + 2 * p];
        o[32 + 32 * p + 2 * j + 1] = blk[192 + 2 * p + 1];
      }
      for (int l = 0; l < 256; ++l) {
        const int u = q6_k_level(blk, l), g = l / 32, col = l % 32, t = col / 4, b = col % 4;
        // Low nibble: pair c = g / 2, chunk t; block 2c low, 2c + 1 high.
        o[288 + 512 * (g / 2) + 64 * t + 4 * j + b] |= static_cast<uint8_t>((u & 0x0F) << (4 * (g % 2)));
        // High 2 bits: half q = g / 4, chunk t; block 4q + b' at bits 2b'.
        o[2336 + 512 * (g / 4) + 64 * t + 4 * j + b] |= static_cast<uint8_t>((u >> 4) << (2 * (g % 4)));
      }
    }
  }
}

void unpack_group_q6_k(const uint8_t* in, int64_t k, uint8_t* dst) {
  const int64_t nsb = k / 256;
  const size_t row_bytes = static_cast<size_t>(nsb) * kQ6KBytes;
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* o = in + static_cast<size_t>(s) * kQ6KPacked;
    for (int64_t j = 0; j < kPackRows; ++j) {
      uint8_t* blk = dst + static_cast<size_t>(j) * row_bytes + static_cast<size_t>(s) * kQ6KBytes;
      std::memset(blk, 0, kQ6KBytes);
      std::memcpy(blk + 208, o + 2 * j, 2);
      for (int p = 0; p < 8; ++p) {
        blk[192 + 2 * p] = o[32 + 32 * p + 2 * j];
        blk[192 + 2 * p + 1] = o[32 + 32 * p + 2 * j + 1];
      }
      for (int l = 0; l < 256; ++l) {
        const int g = l / 32, col = l % 32, t = col / 4, b = col % 4;
        const int low = (o[288 + 512 * (g / 2) + 64 * t + 4 * j + b] >> (4 * (g % 2))) & 0x0F;
        const int high = (o[2336 + 512 * (g / 4) + 64 * t + 4 * j + b] >> (2 * (g % 4))) & 3;
        q6_k_set_level(blk, l, low | (high << 4));
      }
    }
  }
}

}  // namespace

bool can_pack(DType t, int64_t n, int64_t k) {
  if (n % kPackRows != 0) return false;
  if (t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ5_0) return k % 32 == 0;
  if (t == DType::kQ4_K || t == DType::kQ6_K) return k % 256 == 0;
  return false;
}

DType packed_type(DType t) {
  if (t == DType::kQ8_0) return DType::kQ8_0x16;
  if (t == DType::kQ4_K) return DType::kQ4_Kx16;
  if (t == DType::kQ4_0) return DType::kQ4_0x16;
  if (t == DType::kQ5_0) return DType::kQ5_0x16;
  if (t == DType::kQ6_K) return DType::kQ6_Kx16;
  throw Error("packed_type: no interleaved form of " + std::string(dtype_name(t)));
}

void pack(DType t, const uint8_t* src, int64_t n, int64_t k, uint8_t* dst) {
  TANDEM_CHECK(can_pack(t, n, k), "pack: a [" + std::to_string(n) + ", " + std::to_string(k) + "] " +
                                      std::string(dtype_name(t)) + " matrix has no interleaved form");
  const DType p = packed_type(t);
  const size_t src_group = dtype_row_bytes(t, k) * kPackRows, dst_group = group_bytes(p, k);
  for (int64_t g = 0; g < n / kPackRows; ++g) {
    const uint8_t* in = src + static_cast<size_t>(g) * src_group;
    uint8_t* out = dst + static_cast<size_t>(g) * dst_group;
    switch (t) {
      case DType::kQ8_0: pack_group_q8_0(in, k, out); break;
      case DType::kQ4_K: pack_group_q4_k(in, k, out); break;
      case DType::kQ4_0: pack_group_q4_q5(in, k, out, false); break;
      case DType::kQ6_K: pack_group_q6_k(in, k, out); break;
      default: pack_group_q4_q5(in, k, out, true); break;
    }
  }
}

void unpack_group(DType packed, const void* w, int64_t k, int64_t g, uint8_t* dst) {
  const auto* in = static_cast<const uint8_t*>(w) + static_cast<size_t>(g) * group_bytes(packed, k);
  switch (packed) {
    case DType::kQ8_0x16: unpack_group_q8_0(in, k, dst); return;
    case DType::kQ4_Kx16: unpack_group_q4_k(in, k, dst); return;
    case DType::kQ4_0x16: unpack_group_q4_q5(in, k, dst, false); return;
    case DType::kQ5_0x16: unpack_group_q4_q5(in, k, dst, true); return;
    case DType::kQ6_Kx16: unpack_group_q6_k(in, k, dst); return;
    default: throw Error("unpack_group: " + std::string(dtype_name(packed)) + " is not an interleaved type");
  }
}

void matrix_row_to_f32(const TensorView& w, int64_t r, float* dst) {
  const int64_t k = w.dim(1);
  const DType plain = dtype_unpacked(w.dtype);
  if (plain == w.dtype) {
    to_f32(w.row(r), w.dtype, k, dst);
    return;
  }
  // The group back in GGUF rows, then the one row (the embedding lookup of a
  // tied head: a few rows per step).
  const size_t row_bytes = dtype_row_bytes(plain, k);
  thread_local std::vector<uint8_t> rows;
  rows.resize(row_bytes * kPackRows);
  unpack_group(w.dtype, w.data, k, r / kPackRows, rows.data());
  to_f32(rows.data() + static_cast<size_t>(r % kPackRows) * row_bytes, plain, k, dst);
}

}  // namespace tandem::kernels
