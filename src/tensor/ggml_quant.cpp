// Type table, dispatch, the 32-element ("legacy") block formats and the 256-element
// K-quant super-blocks.
//
// Blocks are byte-packed structs in ggml (2-byte halves at odd offsets inside arrays of
// blocks), so every multi-byte field is read with memcpy from a byte pointer at its ggml
// offset: no struct casts, no alignment assumptions, and UBSan stays quiet. The float
// expressions keep ggml's operand order so results match its reference code bit for bit.
#include "tensor/ggml_quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "base/error.h"
#include "tensor/dtype.h"

namespace tandem {

// GGUF stores everything little-endian and we read fields with memcpy.
static_assert(std::endian::native == std::endian::little, "ggml block decoding assumes a little-endian host");

// The eight 6-bit (scale, min) pairs of Q4_K/Q5_K, packed in 12 bytes: pairs 0-3 in the
// low 6 bits of bytes 0-3 (scales) and 4-7 (mins); pairs 4-7 have their low nibbles in
// bytes 8-11 (scale low, min high) and their top two bits in the spare top bits of
// bytes 0-3 (scales) and 4-7 (mins).
void q4_k_scale_min(int j, const uint8_t* q, int& scale, int& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void q4_k_pack_scales_mins(const int scales[8], const int mins[8], uint8_t* sc) {
  std::memset(sc, 0, 12);
  for (int j = 0; j < 8; ++j) {  // the inverse of q4_k_scale_min
    if (j < 4) {
      sc[j] = static_cast<uint8_t>(scales[j]);
      sc[j + 4] = static_cast<uint8_t>(mins[j]);
    } else {
      sc[j + 4] = static_cast<uint8_t>((scales[j] & 0x0F) | ((mins[j] & 0x0F) << 4));
      sc[j - 4] |= static_cast<uint8_t>((scales[j] >> 4) << 6);
      sc[j] |= static_cast<uint8_t>((mins[j] >> 4) << 6);
    }
  }
}

namespace {

constexpr GgmlTypeInfo kF32Info{"f32", 1, 4, true};
constexpr GgmlTypeInfo kF16Info{"f16", 1, 2, true};
constexpr GgmlTypeInfo kQ4_0Info{"q4_0", 32, 18, true};     // d, qs[16]
constexpr GgmlTypeInfo kQ4_1Info{"q4_1", 32, 20, true};     // d, m, qs[16]
constexpr GgmlTypeInfo kQ5_0Info{"q5_0", 32, 22, true};     // d, qh[4], qs[16]
constexpr GgmlTypeInfo kQ5_1Info{"q5_1", 32, 24, true};     // d, m, qh[4], qs[16]
constexpr GgmlTypeInfo kQ8_0Info{"q8_0", 32, 34, true};     // d, int8 qs[32]
constexpr GgmlTypeInfo kQ8_1Info{"q8_1", 32, 36, false};    // d, s, int8 qs[32]: activations only
constexpr GgmlTypeInfo kQ2_KInfo{"q2_K", 256, 84, true};    // scales[16], qs[64], d, dmin
constexpr GgmlTypeInfo kQ3_KInfo{"q3_K", 256, 110, true};   // hmask[32], qs[64], scales[12], d
constexpr GgmlTypeInfo kQ4_KInfo{"q4_K", 256, 144, true};   // d, dmin, scales[12], qs[128]
constexpr GgmlTypeInfo kQ5_KInfo{"q5_K", 256, 176, true};   // d, dmin, scales[12], qh[32], qs[128]
constexpr GgmlTypeInfo kQ6_KInfo{"q6_K", 256, 210, true};   // ql[128], qh[64], int8 scales[16], d
constexpr GgmlTypeInfo kQ8_KInfo{"q8_K", 256, 292, false};  // f32 d, int8 qs[256], int16 bsums[16]: activations only
constexpr GgmlTypeInfo kBF16Info{"bf16", 1, 2, true};

constexpr int kQk = 32;    // elements per legacy block
constexpr int kQkK = 256;  // elements per K-quant super-block

float load_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return f16_to_f32(h);
}

void store_half(uint8_t* p, float f) {
  const uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, sizeof h);
}

// Number of whole blocks in n elements, or an error naming the type.
int64_t block_count(GgmlType type, const GgmlTypeInfo& info, int64_t n, const char* what) {
  if (n < 0 || n % info.block_size != 0) {
    throw Error(std::string(what) + ": " + std::to_string(n) + " elements is not a whole number of " +
                std::string(info.name) + " blocks of " + std::to_string(info.block_size) + " (type id " +
                std::to_string(static_cast<uint32_t>(type)) + ")");
  }
  return n / info.block_size;
}

const GgmlTypeInfo& checked_info(GgmlType type, const char* what) {
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  if (info == nullptr) {
    throw Error(std::string(what) + ": unknown ggml type id " + std::to_string(static_cast<uint32_t>(type)));
  }
  return *info;
}

// ---- legacy 32-element blocks: dequantize ----
// In all of them byte j of qs holds element j in its low nibble and element j + 16 in
// its high nibble; Q5's little-endian 32-bit qh holds the fifth bit of element i at bit i.

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ4_0Info.type_size, dst += kQk) {
    const float d = load_half(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kQk / 2; ++j) {
      dst[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
      dst[j + kQk / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ4_1Info.type_size, dst += kQk) {
    const float d = load_half(src);
    const float m = load_half(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < kQk / 2; ++j) {
      dst[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
      dst[j + kQk / 2] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

// The 5-bit values of a Q5 block: nibbles from qs, fifth bits from qh.
void unpack_q5(const uint8_t* qh_bytes, const uint8_t* qs, int* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, sizeof qh);
  for (int j = 0; j < kQk / 2; ++j) {
    q[j] = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    q[j + kQk / 2] = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
  }
}

void dequantize_q5_0(const uint8_t* src, float* dst, int64_t nb) {
  int q[kQk];
  for (int64_t b = 0; b < nb; ++b, src += kQ5_0Info.type_size, dst += kQk) {
    const float d = load_half(src);
    unpack_q5(src + 2, src + 6, q);
    for (int j = 0; j < kQk; ++j) dst[j] = static_cast<float>(q[j] - 16) * d;
  }
}

void dequantize_q5_1(const uint8_t* src, float* dst, int64_t nb) {
  int q[kQk];
  for (int64_t b = 0; b < nb; ++b, src += kQ5_1Info.type_size, dst += kQk) {
    const float d = load_half(src);
    const float m = load_half(src + 2);
    unpack_q5(src + 4, src + 8, q);
    for (int j = 0; j < kQk; ++j) dst[j] = static_cast<float>(q[j]) * d + m;
  }
}

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ8_0Info.type_size, dst += kQk) {
    const float d = load_half(src);
    for (int j = 0; j < kQk; ++j) dst[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
  }
}

// ---- legacy 32-element blocks: quantize ----
// The arithmetic follows ggml's *_ref functions step by step (the inverse scale from the
// unrounded float d, truncating casts after adding 0.5 or the offset) so the bytes match
// what llama.cpp writes; any reordering would flip roundings near ties.

// The signed value of largest magnitude (the first one on ties), as ggml picks it.
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQk; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float& min, float& max) {
  min = x[0];
  max = x[0];
  for (int j = 1; j < kQk; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// Truncation toward zero of a value already offset to be non-negative, as ggml's integer
// casts, then clamped to hi; out-of-range and NaN values are clamped before the cast so
// they cannot overflow it.
int trunc_level(float v, int hi) {
  if (!(v >= 0.0f)) return 0;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

void quantize_q4_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQk, dst += kQ4_0Info.type_size) {
    const float d = signed_absmax(x) / -8.0f;  // the extreme value lands exactly on level 0 (-8)
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(dst, d);
    for (int j = 0; j < kQk / 2; ++j) {
      const int lo = trunc_level(x[j] * id + 8.5f, 15);
      const int hi = trunc_level(x[j + kQk / 2] * id + 8.5f, 15);
      dst[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void quantize_q4_1(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQk, dst += kQ4_1Info.type_size) {
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(dst, d);
    store_half(dst + 2, min);
    for (int j = 0; j < kQk / 2; ++j) {
      const int lo = trunc_level((x[j] - min) * id + 0.5f, 15);
      const int hi = trunc_level((x[j + kQk / 2] - min) * id + 0.5f, 15);
      dst[4 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// Packs 32 five-bit levels into qh (fifth bits) and qs (nibbles).
void pack_q5(const int* q, uint8_t* qh_bytes, uint8_t* qs) {
  uint32_t qh = 0;
  for (int j = 0; j < kQk / 2; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + kQk / 2] & 0x0F) << 4));
    qh |= static_cast<uint32_t>(q[j] >> 4) << j;
    qh |= static_cast<uint32_t>(q[j + kQk / 2] >> 4) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, sizeof qh);
}

void quantize_q5_0(const float* x, uint8_t* dst, int64_t nb) {
  int q[kQk];
  for (int64_t b = 0; b < nb; ++b, x += kQk, dst += kQ5_0Info.type_size) {
    const float d = signed_absmax(x) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(dst, d);
    for (int j = 0; j < kQk; ++j) q[j] = trunc_level(x[j] * id + 16.5f, 31);
    pack_q5(q, dst + 2, dst + 6);
  }
}

void quantize_q5_1(const float* x, uint8_t* dst, int64_t nb) {
  int q[kQk];
  for (int64_t b = 0; b < nb; ++b, x += kQk, dst += kQ5_1Info.type_size) {
    float min, max;
    min_max(x, min, max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(dst, d);
    store_half(dst + 2, min);
    for (int j = 0; j < kQk; ++j) q[j] = trunc_level((x[j] - min) * id + 0.5f, 31);
    pack_q5(q, dst + 4, dst + 8);
  }
}

void quantize_q8_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQk, dst += kQ8_0Info.type_size) {
    float amax = 0.0f;
    for (int j = 0; j < kQk; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_half(dst, d);
    for (int j = 0; j < kQk; ++j) {
      // std::round is roundf: halves away from zero, as ggml. The clamp only guards the
      // cast against NaN/inf inputs; finite ones already lie in [-127, 127].
      const float v = std::round(x[j] * id);
      const int q = v >= 127.0f ? 127 : v <= -127.0f ? -127 : std::isnan(v) ? 0 : static_cast<int>(v);
      dst[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

// ---- K-quants: 256-element super-blocks ----
// Each super-block has an f16 scale d (and for the "x = d*s*q - dmin*m" kinds an f16
// dmin) and per-sub-block integer scales. Quants are interleaved so that a SIMD lane
// reading 32 consecutive bytes gets 32 consecutive elements: for 2-bit quants byte l of
// a 32-byte group holds elements l, l+32, l+64, l+96 of a 128-element half in bit pairs
// 0-1, 2-3, 4-5, 6-7; for 4-bit quants byte l holds elements l (low) and l+32 (high) of
// a 64-element chunk.

// Q2_K: scales[16] (low nibble: scale, high nibble: min, one pair per 16 elements),
// qs[64], d, dmin. x = d * scale * q - dmin * min.
void dequantize_q2_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ2_KInfo.type_size, dst += kQkK) {
    const uint8_t* scales = src;
    const uint8_t* qs = src + 16;
    const float d = load_half(src + 80);
    const float dmin = load_half(src + 82);
    for (int e = 0; e < kQkK; ++e) {
      const int half = e / 128, group = (e % 128) / 32, l = e % 32;
      const int q = (qs[32 * half + l] >> (2 * group)) & 3;
      const uint8_t sc = scales[e / 16];
      dst[e] = d * static_cast<float>(sc & 0x0F) * static_cast<float>(q) - dmin * static_cast<float>(sc >> 4);
    }
  }
}

// Q3_K: hmask[32], qs[64], scales[12], d. Element e's third bit is bit e/32 of hmask[e%32];
// a clear bit means the 2-bit value is offset by -4 (so q spans -4..3). The sixteen 6-bit
// scales (stored +32) keep their low nibbles in bytes 0-7 (scale j in byte j%8, high
// nibble for j >= 8) and their top two bits in bytes 8-11 (scale j at bits 2*(j/4) of
// byte 8 + j%4).
void dequantize_q3_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ3_KInfo.type_size, dst += kQkK) {
    const uint8_t* hmask = src;
    const uint8_t* qs = src + 32;
    const uint8_t* sc = src + 96;
    const float d = load_half(src + 108);
    float scale[16];
    for (int j = 0; j < 16; ++j) {
      const int low = j < 8 ? sc[j] & 0x0F : sc[j - 8] >> 4;
      const int high = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
      scale[j] = d * static_cast<float>((low | (high << 4)) - 32);
    }
    for (int e = 0; e < kQkK; ++e) {
      const int half = e / 128, group = (e % 128) / 32, l = e % 32;
      int q = (qs[32 * half + l] >> (2 * group)) & 3;
      if ((hmask[l] & (1u << (e / 32))) == 0) q -= 4;
      dst[e] = scale[e / 16] * static_cast<float>(q);
    }
  }
}


// Q4_K: d, dmin, scales[12], qs[128]; eight sub-blocks of 32. x = d*scale*q - dmin*min.
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ4_KInfo.type_size, dst += kQkK) {
    const float d = load_half(src);
    const float dmin = load_half(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qs = src + 16;
    for (int sub = 0; sub < 8; ++sub) {
      int sc, m;
      q4_k_scale_min(sub, scales, sc, m);
      const float ds = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
      const uint8_t* q = qs + 32 * (sub / 2);
      const int shift = 4 * (sub % 2);  // even sub-blocks in low nibbles, odd in high
      for (int l = 0; l < 32; ++l) dst[32 * sub + l] = ds * static_cast<float>((q[l] >> shift) & 0x0F) - dm;
    }
  }
}

// Q5_K: Q4_K plus qh[32]: element e's fifth bit is bit e/32 of qh[e%32].
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ5_KInfo.type_size, dst += kQkK) {
    const float d = load_half(src);
    const float dmin = load_half(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qh = src + 16;
    const uint8_t* qs = src + 48;
    for (int sub = 0; sub < 8; ++sub) {
      int sc, m;
      q4_k_scale_min(sub, scales, sc, m);
      const float ds = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
      const uint8_t* q = qs + 32 * (sub / 2);
      const int shift = 4 * (sub % 2);
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> sub) & 1) << 4);
        dst[32 * sub + l] = ds * static_cast<float>(v) - dm;
      }
    }
  }
}

// Q6_K: ql[128], qh[64], int8 scales[16], d. Per 128-element half: 64 bytes of ql hold
// the low nibbles (byte l: elements l and l+64; byte l+32: elements l+32 and l+96) and
// 32 bytes of qh the top two bits (byte l: elements l, l+32, l+64, l+96 in bit pairs).
// q is stored +32; x = d * scale[e/16] * (q - 32).
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kQ6_KInfo.type_size, dst += kQkK) {
    const float d = load_half(src + 208);
    for (int e = 0; e < kQkK; ++e) {
      const int half = e / 128, group = (e % 128) / 32, l = e % 32;
      const uint8_t* ql = src + 64 * half;
      const uint8_t* qh = src + 128 + 32 * half;
      const int low = (ql[l + 32 * (group % 2)] >> (4 * (group / 2))) & 0x0F;
      const int high = (qh[l] >> (2 * group)) & 3;
      const auto scale = static_cast<int8_t>(src[192 + e / 16]);
      dst[e] = d * static_cast<float>(scale) * static_cast<float>((low | (high << 4)) - 32);
    }
  }
}


// ---- K-quant quantizers ----
// Not bit-identical to ggml (its *_ref functions run their own scale searches); the
// format is the same, so any reader decodes them. Each sub-block's scale (and min)
// comes from a small search: candidate inverse scales around the range-filling one,
// each followed by a weighted least-squares refit of scale (and min) to the rounded
// levels; the candidate with the least weighted squared error wins. The weights favor
// large-magnitude values, which matter most to a dot product.

// Nearest integer, halves away from zero (std::lround without the library call,
// which made the scale searches several times slower).
inline int round_int(float v) { return static_cast<int>(v + (v >= 0.0f ? 0.5f : -0.5f)); }

// Fits x ≈ scale * q - min over n values with levels 0..nmax and min >= 0 (the
// "x = d*s*q - dmin*m" kinds). Returns the scale; min through `min_out`.
float fit_scale_min(const float* x, const float* w, int n, int nmax, float& min_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);
  if (hi <= lo) {
    min_out = -lo;
    return 0.0f;
  }
  float best_err = INFINITY, best_scale = (hi - lo) / static_cast<float>(nmax), best_min = -lo;
  for (int step = -10; step <= 10; ++step) {
    const float iscale = (static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / (hi - lo);
    // Levels for this candidate, then the least-squares (scale, offset) for them.
    float sw = 0, swq = 0, swqq = 0, swx = 0, swqx = 0;
    uint8_t q[256];
    for (int i = 0; i < n; ++i) {
      int l = round_int((iscale * (x[i] - lo)));
      l = std::clamp(l, 0, nmax);
      q[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sw += w[i];
      swq += w[i] * fl;
      swqq += w[i] * fl * fl;
      swx += w[i] * x[i];
      swqx += w[i] * fl * x[i];
    }
    const float det = sw * swqq - swq * swq;
    float scale, offset;  // x ≈ scale * q + offset
    if (det > 0) {
      scale = (sw * swqx - swq * swx) / det;
      offset = (swqq * swx - swq * swqx) / det;
    } else {
      scale = 1.0f / iscale;
      offset = lo;
    }
    if (offset > 0) {  // the format only subtracts: refit the scale with offset 0
      offset = 0;
      scale = swqq > 0 ? swqx / swqq : 0.0f;
    }
    if (scale < 0) continue;
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float e = scale * static_cast<float>(q[i]) + offset - x[i];
      err += w[i] * e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      best_min = -offset;
    }
  }
  min_out = best_min;
  return best_scale;
}

// Fits x ≈ scale * q with q in [-nmax, nmax-1]; the scale may be negative so that the
// value of largest magnitude lands on -nmax, the level with no positive twin.
float fit_scale_symmetric(const float* x, const float* w, int n, int nmax) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      vmax = x[i];
    }
  }
  if (amax == 0) return 0.0f;
  float best_err = INFINITY, best_scale = vmax / -static_cast<float>(nmax);
  for (int step = -9; step <= 9; ++step) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / vmax;
    float swqx = 0, swqq = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_int((iscale * x[i])), -nmax, nmax - 1);
      swqx += w[i] * static_cast<float>(l) * x[i];
      swqq += w[i] * static_cast<float>(l * l);
    }
    if (swqq <= 0) continue;
    const float scale = swqx / swqq;
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_int((iscale * x[i])), -nmax, nmax - 1);
      const float e = scale * static_cast<float>(l) - x[i];
      err += w[i] * e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
    }
  }
  return best_scale;
}

void quantize_q4_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQkK, dst += kQ4_KInfo.type_size) {
    float sum2 = 0;
    for (int i = 0; i < kQkK; ++i) sum2 += x[i] * x[i];
    const float rms = std::sqrt(sum2 / kQkK);
    float w[kQkK];
    for (int i = 0; i < kQkK; ++i) w[i] = rms + std::fabs(x[i]);
    float scale[8], min[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      scale[j] = fit_scale_min(x + 32 * j, w + 32 * j, 32, 15, min[j]);
      max_scale = std::max(max_scale, scale[j]);
      max_min = std::max(max_min, min[j]);
    }
    store_half(dst, max_scale / 63.0f);
    store_half(dst + 2, max_min / 63.0f);
    const float d = load_half(dst), dmin = load_half(dst + 2);
    int ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = d > 0 ? std::clamp(round_int((scale[j] / d)), 0, 63) : 0;
      lm[j] = dmin > 0 ? std::clamp(round_int((min[j] / dmin)), 0, 63) : 0;
    }
    q4_k_pack_scales_mins(ls, lm, dst + 4);
    uint8_t* qs = dst + 16;
    std::memset(qs, 0, 128);
    for (int j = 0; j < 8; ++j) {
      const float ds = d * static_cast<float>(ls[j]), dm = dmin * static_cast<float>(lm[j]);
      const float inv = ds > 0 ? 1.0f / ds : 0.0f;
      for (int l = 0; l < 32; ++l) {
        const int q = std::clamp(round_int(((x[32 * j + l] + dm) * inv)), 0, 15);
        qs[32 * (j / 2) + l] |= static_cast<uint8_t>(q << (4 * (j % 2)));
      }
    }
  }
}

void quantize_q6_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQkK, dst += kQ6_KInfo.type_size) {
    float w[kQkK];
    for (int i = 0; i < kQkK; ++i) w[i] = x[i] * x[i] + 1e-20f;
    float scale[16], amax = 0;
    for (int j = 0; j < 16; ++j) {
      scale[j] = fit_scale_symmetric(x + 16 * j, w + 16 * j, 16, 32);
      amax = std::max(amax, std::fabs(scale[j]));
    }
    store_half(dst + 208, amax / 127.0f);
    const float d = load_half(dst + 208);
    uint8_t* ql = dst;
    uint8_t* qh = dst + 128;
    std::memset(dst, 0, 208);
    for (int j = 0; j < 16; ++j) {
      const int ls = d > 0 ? std::clamp(round_int((scale[j] / d)), -127, 127) : 0;
      dst[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(ls));
      const float ds = d * static_cast<float>(ls);
      const float inv = ds != 0 ? 1.0f / ds : 0.0f;
      for (int i = 0; i < 16; ++i) {
        const int e = 16 * j + i;
        const int q = std::clamp(round_int((x[e] * inv)), -32, 31) + 32;
        const int half = e / 128, group = (e % 128) / 32, l = e % 32;  // as dequantize_q6_k
        ql[64 * half + l + 32 * (group % 2)] |= static_cast<uint8_t>((q & 0x0F) << (4 * (group / 2)));
        qh[32 * half + l] |= static_cast<uint8_t>((q >> 4) << (2 * group));
      }
    }
  }
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32: return &kF32Info;
    case GgmlType::kF16: return &kF16Info;
    case GgmlType::kQ4_0: return &kQ4_0Info;
    case GgmlType::kQ4_1: return &kQ4_1Info;
    case GgmlType::kQ5_0: return &kQ5_0Info;
    case GgmlType::kQ5_1: return &kQ5_1Info;
    case GgmlType::kQ8_0: return &kQ8_0Info;
    case GgmlType::kQ8_1: return &kQ8_1Info;
    case GgmlType::kQ2_K: return &kQ2_KInfo;
    case GgmlType::kQ3_K: return &kQ3_KInfo;
    case GgmlType::kQ4_K: return &kQ4_KInfo;
    case GgmlType::kQ5_K: return &kQ5_KInfo;
    case GgmlType::kQ6_K: return &kQ6_KInfo;
    case GgmlType::kQ8_K: return &kQ8_KInfo;
    case GgmlType::kBF16: return &kBF16Info;
  }
  return nullptr;
}

size_t ggml_row_size(GgmlType type, int64_t n) {
  const GgmlTypeInfo& info = checked_info(type, "ggml_row_size");
  return static_cast<size_t>(n / info.block_size) * info.type_size;
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const GgmlTypeInfo& info = checked_info(type, "dequantize_row");
  const int64_t nb = block_count(type, info, n, "dequantize_row");
  const auto* s = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(dst, s, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_half(s + 2 * i);
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, sizeof h);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::kQ4_0: dequantize_q4_0(s, dst, nb); return;
    case GgmlType::kQ4_1: dequantize_q4_1(s, dst, nb); return;
    case GgmlType::kQ5_0: dequantize_q5_0(s, dst, nb); return;
    case GgmlType::kQ5_1: dequantize_q5_1(s, dst, nb); return;
    case GgmlType::kQ8_0: dequantize_q8_0(s, dst, nb); return;
    case GgmlType::kQ2_K: dequantize_q2_k(s, dst, nb); return;
    case GgmlType::kQ3_K: dequantize_q3_k(s, dst, nb); return;
    case GgmlType::kQ4_K: dequantize_q4_k(s, dst, nb); return;
    case GgmlType::kQ5_K: dequantize_q5_k(s, dst, nb); return;
    case GgmlType::kQ6_K: dequantize_q6_k(s, dst, nb); return;
    case GgmlType::kQ8_1:
    case GgmlType::kQ8_K: break;
  }
  throw Error("dequantize_row: cannot dequantize ggml type " + std::string(info.name) + " (type id " +
              std::to_string(static_cast<uint32_t>(type)) + ")");
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  const GgmlTypeInfo& info = checked_info(type, "quantize_row");
  const int64_t nb = block_count(type, info, n, "quantize_row");
  auto* d = static_cast<uint8_t*>(dst);
  switch (type) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) store_half(d + 2 * i, src[i]);
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, sizeof h);
      }
      return;
    case GgmlType::kQ4_0: quantize_q4_0(src, d, nb); return;
    case GgmlType::kQ4_1: quantize_q4_1(src, d, nb); return;
    case GgmlType::kQ5_0: quantize_q5_0(src, d, nb); return;
    case GgmlType::kQ5_1: quantize_q5_1(src, d, nb); return;
    case GgmlType::kQ8_0: quantize_q8_0(src, d, nb); return;
    case GgmlType::kQ4_K: quantize_q4_k(src, d, nb); return;
    case GgmlType::kQ6_K: quantize_q6_k(src, d, nb); return;
    default: break;
  }
  throw Error("quantize_row: quantizing to ggml type " + std::string(info.name) + " (type id " +
              std::to_string(static_cast<uint32_t>(type)) + ") is not implemented");
}

std::optional<DType> dtype_from_ggml(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return DType::kF32;
    case GgmlType::kF16: return DType::kF16;
    case GgmlType::kBF16: return DType::kBF16;
    case GgmlType::kQ8_0: return DType::kQ8_0;
    case GgmlType::kQ4_0: return DType::kQ4_0;
    case GgmlType::kQ5_0: return DType::kQ5_0;
    case GgmlType::kQ4_K: return DType::kQ4_K;
    case GgmlType::kQ6_K: return DType::kQ6_K;
    default: return std::nullopt;
  }
}

std::optional<GgmlType> ggml_from_dtype(DType type) {
  switch (type) {
    case DType::kF32: return GgmlType::kF32;
    case DType::kF16: return GgmlType::kF16;
    case DType::kBF16: return GgmlType::kBF16;
    case DType::kQ8_0: return GgmlType::kQ8_0;
    case DType::kQ4_0: return GgmlType::kQ4_0;
    case DType::kQ5_0: return GgmlType::kQ5_0;
    case DType::kQ4_K: return GgmlType::kQ4_K;
    case DType::kQ6_K: return GgmlType::kQ6_K;
    default: return std::nullopt;
  }
}

}  // namespace tandem
