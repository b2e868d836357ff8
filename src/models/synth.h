// Random-weight checkpoints with the exact shapes and configs of real models, for
// benchmarks and tests that need a realistic size but not trained weights (the real
// weights cannot be downloaded here). `tandem synth` writes one per preset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace tandem::models {

struct SynthPreset {
  std::string name;                // e.g. "llama-3.2-1b"
  nlohmann::ordered_json config;   // the real model's config.json (transformers v4 keys)
  nlohmann::ordered_json generation_config;
  int64_t expected_params = 0;     // the published parameter count (tied embedding counted once)
};

// Presets: llama-3.2-1b, qwen2.5-0.5b, qwen3-0.6b, smollm2-135m.
const std::vector<SynthPreset>& synth_presets();
std::string synth_preset_list();  // "llama-3.2-1b, qwen2.5-0.5b, ..."
// Throws tandem::Error listing the presets when the name is unknown.
const SynthPreset& synth_preset(const std::string& name);

struct SynthTensor {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // row-major
  enum class Init { kNormal, kOnes, kZeros } init = Init::kNormal;
  double stddev = 0.0;         // kNormal
};
// The tensors (and their initialisation) of a config.json of family llama, qwen2 or qwen3.
std::vector<SynthTensor> synth_tensors(const nlohmann::ordered_json& config);
int64_t synth_param_count(const nlohmann::ordered_json& config);

struct SynthOptions {
  DType dtype = DType::kBF16;  // bf16, f16 or f32
  uint64_t seed = 0;
  int threads = 0;             // 0: all cores
};

struct SynthReport {
  int64_t params = 0;
  uint64_t bytes = 0;  // model.safetensors
};

// Writes config.json, generation_config.json and model.safetensors into `dir`
// (created if needed). The weights depend only on the preset, dtype and seed, not on
// the thread count. Throws tandem::Error on I/O failure.
SynthReport write_synth_model(const SynthPreset& preset, const std::filesystem::path& dir, const SynthOptions& opts);

}  // namespace tandem::models
