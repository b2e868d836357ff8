// Rotary position embedding frequencies for every rope_type transformers
// supports in our families: default, linear, dynamic (NTK), llama3, yarn,
// longrope. Mirrors transformers' numerics: inverse frequencies and the angle
// position * inv_freq in float32, then cos/sin times the attention scaling.
//
// transformers keeps inv_freq as a module buffer, so a model loaded in its
// checkpoint dtype (bf16 for most published models) rounds the frequencies to
// that dtype. The error this causes grows with the position (about 1e-3
// relative logit error at position 70 for bf16). To match transformers we do
// the same when `freq_dtype` is set (Model::load sets it from config.json's
// dtype); LoadOptions::exact_buffers turns it off.
#pragma once

#include <cstdint>
#include <vector>

#include <optional>

#include "formats/hf_config.h"
#include "tensor/dtype.h"

namespace tandem::models {

class Rope {
 public:
  Rope(const formats::RopeParams& p, int64_t head_dim, int64_t max_position_embeddings,
       std::optional<DType> freq_dtype = std::nullopt);

  int64_t rot_dim() const { return rot_dim_; }
  // Whether the frequencies depend on the sequence length (dynamic, longrope).
  bool length_dependent() const { return params_.type == "dynamic" || params_.type == "longrope"; }

  // Inverse frequencies (rot_dim/2) and the cos/sin scaling for a sequence
  // whose largest position is seq_len - 1.
  void frequencies(int64_t seq_len, std::vector<float>& inv_freq, float& scaling) const;

  // cos and sin (rot_dim/2 each) at `pos`.
  static void cos_sin(const std::vector<float>& inv_freq, float scaling, int64_t pos, float* cos, float* sin);

 private:
  void round_to_dtype(std::vector<float>& inv_freq) const;
  formats::RopeParams params_;
  int64_t rot_dim_ = 0;
  int64_t max_pos_ = 0;
  std::optional<DType> freq_dtype_;
  std::vector<float> base_inv_freq_;  // for length-independent types
  float base_scaling_ = 1.0f;
};

}  // namespace tandem::models
