#include "models/quant_recipe.h"

namespace tandem::models {

DType recipe_type(DType target, WeightRole role, int64_t k, DType stored) {
  if (!dtype_is_quantized(target)) return target;
  DType t = target;
  if (role == WeightRole::kHead && (t == DType::kQ4_0 || t == DType::kQ5_0 || t == DType::kQ4_K)) t = DType::kQ6_K;
  if (k % dtype_block(t) != 0) {
    if (t == DType::kQ4_K) t = DType::kQ5_0;
    if (t == DType::kQ6_K) t = DType::kQ8_0;
  }
  if (k % dtype_block(t) != 0) return stored;
  return t;
}

std::optional<DType> parse_quant_target(std::string_view name) {
  std::optional<DType> t = dtype_from_name(name);
  if (!t) return std::nullopt;
  switch (*t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ4_K:
    case DType::kQ6_K: return t;
    default: return std::nullopt;
  }
}

}  // namespace tandem::models
