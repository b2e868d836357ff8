#include "models/quant_recipe.h"

#include "models/gguf_export.h"
#include "tensor/ggml_quant.h"

namespace tandem::models {

namespace {

ExportType export_type_of(DType t) {
  switch (t) {
    case DType::kF16: return ExportType::kF16;
    case DType::kBF16: return ExportType::kBF16;
    case DType::kQ8_0: return ExportType::kQ8_0;
    case DType::kQ4_0: return ExportType::kQ4_0;
    case DType::kQ5_0: return ExportType::kQ5_0;
    case DType::kQ4_K: return ExportType::kQ4_K;
    case DType::kQ6_K: return ExportType::kQ6_K;
    default: return ExportType::kF32;
  }
}

}  // namespace

DType recipe_type(DType target, const std::string& hf_name, WeightRole role, int64_t rows, int64_t k,
                  int64_t n_layers, DType stored) {
  if (!dtype_is_quantized(target)) return target;
  // The recipe keys on llama.cpp's tensor names and the layer index.
  int64_t layer = -1;
  const std::string prefix = "model.layers.";
  if (hf_name.rfind(prefix, 0) == 0) layer = std::stoll(hf_name.substr(prefix.size()));
  std::string gguf_name = "matrix.weight";
  if (hf_name.find("v_proj.weight") != std::string::npos) gguf_name = "attn_v.weight";
  if (hf_name.find("down_proj.weight") != std::string::npos) gguf_name = "ffn_down.weight";
  const GgmlType g =
      recipe_tensor_type(export_type_of(target), gguf_name, {k, rows}, layer, n_layers, role == WeightRole::kHead);
  const std::optional<DType> d = dtype_from_ggml(g);
  return d ? *d : stored;
}

std::optional<DType> parse_quant_target(std::string_view name) {
  std::optional<DType> t = dtype_from_name(name == "q4_k_m" || name == "Q4_K_M" ? "q4_k" : name);
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
