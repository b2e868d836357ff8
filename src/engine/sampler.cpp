#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "base/error.h"

namespace tandem::engine {

void validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
    throw Error("temperature must be >= 0, got " + std::to_string(p.temperature));
  }
  if (p.top_k < 0) throw Error("top_k must be >= 0, got " + std::to_string(p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) throw Error("top_p must be in (0, 1], got " + std::to_string(p.top_p));
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) throw Error("min_p must be in [0, 1], got " + std::to_string(p.min_p));
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty)) {
    throw Error("repetition_penalty must be > 0, got " + std::to_string(p.repetition_penalty));
  }
}

int32_t argmax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { validate(p); }

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  const size_t n = logits.size();
  if (p_.repetition_penalty != 1.0f) {
    // Each distinct token once, as transformers' gather/scatter does.
    std::vector<int32_t> seen(history.begin(), history.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t id : seen) {
      if (id < 0 || static_cast<size_t>(id) >= n) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l < 0.0f ? l * p_.repetition_penalty : l / p_.repetition_penalty;
    }
  }
  if (p_.temperature == 0.0f) return argmax(logits);

  for (float& l : logits) l /= p_.temperature;
  // Candidates sorted by logit, best first; ties keep the lower id first.
  idx_.resize(n);
  std::iota(idx_.begin(), idx_.end(), 0);
  size_t keep = n;
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
    keep = static_cast<size_t>(p_.top_k);
    std::partial_sort(idx_.begin(), idx_.begin() + static_cast<std::ptrdiff_t>(keep), idx_.end(), [&](int32_t a, int32_t b) {
      return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
             (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
    });
  } else {
    std::sort(idx_.begin(), idx_.end(), [&](int32_t a, int32_t b) {
      return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
             (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
    });
  }
  // Softmax over the kept candidates.
  probs_.resize(keep);
  const float mx = logits[static_cast<size_t>(idx_[0])];
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    probs_[i] = std::exp(logits[static_cast<size_t>(idx_[i])] - mx);
    sum += probs_[i];
  }
  for (size_t i = 0; i < keep; ++i) probs_[i] = static_cast<float>(probs_[i] / sum);
  if (p_.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p (at least one token).
    double cum = 0.0;
    size_t k = 0;
    while (k < keep) {
      cum += probs_[k];
      ++k;
      if (cum >= p_.top_p) break;
    }
    keep = std::max<size_t>(1, k);
  }
  if (p_.min_p > 0.0f) {
    const float threshold = p_.min_p * probs_[0];
    size_t k = 1;
    while (k < keep && probs_[k] >= threshold) ++k;
    keep = k;
  }
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += probs_[i];
  std::uniform_real_distribution<double> uni(0.0, total);
  double u = uni(rng_);
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += probs_[i];
    if (u < acc) return idx_[i];
  }
  return idx_[keep - 1];
}

}  // namespace tandem::engine
