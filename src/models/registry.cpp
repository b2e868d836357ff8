#include <cmath>

#include "base/error.h"
#include "models/arch.h"

namespace tandem::models {

// One line per family (each defined in its own file).
extern const Family kLlamaFamily;
extern const Family kMistralFamily;
extern const Family kQwen2Family;
extern const Family kQwen3Family;
extern const Family kPhi3Family;
extern const Family kGemma2Family;
extern const Family kGemma3Family;

namespace {
const Family* const kFamilies[] = {&kLlamaFamily, &kMistralFamily, &kQwen2Family, &kQwen3Family,
                                   &kPhi3Family,  &kGemma2Family,  &kGemma3Family};
}

const Family* find_family(std::string_view model_type) {
  for (const Family* f : kFamilies) {
    for (auto t : f->model_types) {
      if (t == model_type) return f;
    }
  }
  return nullptr;
}

std::string supported_model_types() {
  std::string out;
  for (const Family* f : kFamilies) {
    for (auto t : f->model_types) {
      if (!out.empty()) out += ", ";
      out += t;
    }
  }
  return out;
}

ArchSpec configure_model(formats::ModelConfig& cfg) {
  const Family* f = find_family(cfg.model_type);
  if (f == nullptr) {
    throw Error(cfg.source + ": model_type '" + cfg.model_type + "' is not supported (supported: " +
                supported_model_types() + ")");
  }
  ArchSpec spec = f->configure(cfg);
  spec.family = std::string(f->name);
  if (cfg.layer_types.size() != static_cast<size_t>(cfg.num_hidden_layers)) {
    throw Error(cfg.source + ": layer_types has " + std::to_string(cfg.layer_types.size()) + " entries for " +
                std::to_string(cfg.num_hidden_layers) + " layers");
  }
  for (auto t : cfg.layer_types) {
    if (t == formats::LayerType::kSliding && !cfg.sliding_window) {
      throw Error(cfg.source + ": a layer uses sliding attention but 'sliding_window' is not set");
    }
    if (!cfg.rope.count(t)) throw Error(cfg.source + ": no RoPE parameters for a layer type in use");
  }
  if (spec.attn_scale == 1.0f) spec.attn_scale = static_cast<float>(1.0 / std::sqrt(double(cfg.head_dim)));
  return spec;
}

Activation activation_from(const formats::ModelConfig& cfg) {
  const std::string& a = cfg.hidden_act;
  if (a == "silu" || a == "swish") return Activation::kSilu;
  if (a == "gelu_pytorch_tanh" || a == "gelu_new" || a == "gelu_fast") return Activation::kGeluTanh;
  throw Error(cfg.source + ": hidden_act '" + a + "' is not supported (supported: silu, gelu_pytorch_tanh)");
}

void default_layer_types(formats::ModelConfig& cfg, formats::LayerType t) {
  if (cfg.has_layer_types) return;
  cfg.layer_types.assign(static_cast<size_t>(cfg.num_hidden_layers), t);
}

}  // namespace tandem::models
