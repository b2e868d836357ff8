// Mistral: Llama blocks; when sliding_window is set every layer attends to that
// many most recent tokens (itself included).
#include "models/arch.h"

namespace tandem::models {
namespace {

ArchSpec configure(formats::ModelConfig& cfg) {
  default_layer_types(cfg, cfg.sliding_window ? formats::LayerType::kSliding : formats::LayerType::kFull);
  ArchSpec s;
  s.activation = activation_from(cfg);
  return s;
}

}  // namespace

extern const Family kMistralFamily{"mistral", {"mistral"}, configure};

}  // namespace tandem::models
