#include "tensor/dtype.h"

#include <cctype>
#include <cmath>
#include <string>

namespace tandem {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kI8: return 1;
    case DType::kU8: return 1;
    case DType::kQ8_0: return 34;
    case DType::kQ4_0: return 18;
    case DType::kQ5_0: return 22;
    case DType::kQ4_K: return 144;
    case DType::kQ6_K: return 210;
    case DType::kQ8_0x16: return 34;
    case DType::kQ4_Kx16: return 148;
    case DType::kQ4_0x16: return 18;
    case DType::kQ5_0x16: return 22;
    case DType::kQ6_Kx16: return 210;
  }
  return 0;
}

int64_t dtype_block(DType t) {
  switch (t) {
    case DType::kQ8_0:
    case DType::kQ8_0x16:
    case DType::kQ4_0x16:
    case DType::kQ5_0x16:
    case DType::kQ4_0:
    case DType::kQ5_0: return 32;
    case DType::kQ4_K:
    case DType::kQ4_Kx16:
    case DType::kQ6_Kx16:
    case DType::kQ6_K: return 256;
    default: return 1;
  }
}

bool dtype_is_quantized(DType t) { return dtype_block(t) > 1; }

DType dtype_unpacked(DType t) {
  switch (t) {
    case DType::kQ8_0x16: return DType::kQ8_0;
    case DType::kQ4_Kx16: return DType::kQ4_K;
    case DType::kQ4_0x16: return DType::kQ4_0;
    case DType::kQ5_0x16: return DType::kQ5_0;
    case DType::kQ6_Kx16: return DType::kQ6_K;
    default: return t;
  }
}

std::optional<DType> dtype_from_name(std::string_view name) {
  std::string s(name);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr DType kAll[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kI32,  DType::kI64, DType::kI8,
                                   DType::kU8,   DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K};
  for (DType t : kAll) {
    std::string n(dtype_name(t));
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == s) return t;
  }
  return std::nullopt;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kQ8_0: return "Q8_0";
    case DType::kQ4_0: return "Q4_0";
    case DType::kQ5_0: return "Q5_0";
    case DType::kQ4_K: return "Q4_K";
    case DType::kQ6_K: return "Q6_K";
    case DType::kQ8_0x16: return "Q8_0x16";
    case DType::kQ4_Kx16: return "Q4_Kx16";
    case DType::kQ4_0x16: return "Q4_0x16";
    case DType::kQ5_0x16: return "Q5_0x16";
    case DType::kQ6_Kx16: return "Q6_Kx16";
  }
  return "?";
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  if (name == "I32") return DType::kI32;
  if (name == "I64") return DType::kI64;
  if (name == "I8") return DType::kI8;
  if (name == "U8") return DType::kU8;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {  // subnormal or zero in f16
    float a;
    std::memcpy(&a, &abs, sizeof a);
    // Scale so that the f16 subnormal unit becomes 1, round to nearest even.
    float scaled = a * 16777216.0f;  // 2^24
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t exp = ((abs >> 23) - 127 + 15);
  uint32_t mant = abs & 0x7fffffu;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into exponent: correct
  return static_cast<uint16_t>(sign | h);
}

}  // namespace tandem
