// Token selection from logits, in the order transformers applies its
// processors: repetition penalty, then temperature, top-k, top-p, min-p.
// temperature == 0 means greedy (argmax, first index on ties).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace tandem::engine {

struct SamplingParams {
  float temperature = 0.0f;         // 0: greedy
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off; applies to prompt and generated tokens
  uint64_t seed = 0;
};

// Throws tandem::Error naming the parameter when a value is out of range.
void validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // `logits` is modified in place. `history` holds the tokens seen so far.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<int32_t> idx_;
  std::vector<float> probs_;
};

int32_t argmax(std::span<const float> v);

}  // namespace tandem::engine
