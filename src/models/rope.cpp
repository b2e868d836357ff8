#include "models/rope.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace tandem::models {
namespace {

std::vector<float> default_inv_freq(double base, int64_t dim) {
  std::vector<float> f(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    // transformers: base ** (arange(0, dim, 2).float() / dim), in float32.
    float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
    f[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(base, static_cast<double>(expo)));
  }
  return f;
}

double yarn_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

Rope::Rope(const formats::RopeParams& p, int64_t head_dim, int64_t max_position_embeddings,
           std::optional<DType> freq_dtype)
    : params_(p), max_pos_(max_position_embeddings), freq_dtype_(freq_dtype) {
  rot_dim_ = static_cast<int64_t>(static_cast<double>(head_dim) * p.partial_rotary_factor);
  rot_dim_ -= rot_dim_ % 2;
  if (rot_dim_ <= 0 || rot_dim_ > head_dim) throw Error("rope: partial_rotary_factor gives an invalid rotary dim");
  if (!length_dependent()) {
    frequencies(0, base_inv_freq_, base_scaling_);
    round_to_dtype(base_inv_freq_);
  }
}

void Rope::round_to_dtype(std::vector<float>& inv_freq) const {
  if (!freq_dtype_) return;
  for (float& f : inv_freq) {
    if (*freq_dtype_ == DType::kBF16) f = bf16_to_f32(f32_to_bf16(f));
    if (*freq_dtype_ == DType::kF16) f = f16_to_f32(f32_to_f16(f));
  }
}

void Rope::frequencies(int64_t seq_len, std::vector<float>& inv_freq, float& scaling) const {
  if (!base_inv_freq_.empty()) {
    inv_freq = base_inv_freq_;
    scaling = base_scaling_;
    return;
  }
  const int64_t dim = rot_dim_;
  const auto& p = params_;
  scaling = 1.0f;
  if (p.type == "default") {
    inv_freq = default_inv_freq(p.theta, dim);
  } else if (p.type == "linear") {
    inv_freq = default_inv_freq(p.theta, dim);
    for (float& f : inv_freq) f = static_cast<float>(f / p.factor);
  } else if (p.type == "dynamic") {
    int64_t orig = p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : max_pos_;
    double base = p.theta;
    if (seq_len <= orig) {
      inv_freq = default_inv_freq(base, dim);
      round_to_dtype(inv_freq);
      return;
    }
    base = p.theta * std::pow(p.factor * static_cast<double>(seq_len) / static_cast<double>(orig) - (p.factor - 1.0),
                              static_cast<double>(dim) / static_cast<double>(dim - 2));
    inv_freq = default_inv_freq(base, dim);
  } else if (p.type == "llama3") {
    inv_freq = default_inv_freq(p.theta, dim);
    const double old_ctx = static_cast<double>(p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : 8192);
    const double low_wavelen = old_ctx / p.low_freq_factor;
    const double high_wavelen = old_ctx / p.high_freq_factor;
    for (float& f : inv_freq) {
      const double wavelen = 2.0 * M_PI / f;
      double v = f;
      if (wavelen > low_wavelen) {
        v = f / p.factor;
      } else if (wavelen >= high_wavelen) {  // medium band: interpolate smoothly
        double smooth = (old_ctx / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
        v = (1.0 - smooth) * f / p.factor + smooth * f;
      }
      f = static_cast<float>(v);
    }
  } else if (p.type == "yarn") {
    double factor = p.factor;
    double orig = static_cast<double>(max_pos_);
    if (p.original_max_position_embeddings > 0) {
      orig = static_cast<double>(p.original_max_position_embeddings);
      factor = static_cast<double>(max_pos_) / orig;
    }
    double attn = 0.0;
    if (p.attention_factor) {
      attn = *p.attention_factor;
    } else if (p.mscale && p.mscale_all_dim && *p.mscale != 0.0 && *p.mscale_all_dim != 0.0) {
      attn = yarn_mscale(factor, *p.mscale) / yarn_mscale(factor, *p.mscale_all_dim);
    } else {
      attn = yarn_mscale(factor, 1.0);
    }
    auto correction_dim = [&](double rotations) {
      return (static_cast<double>(dim) * std::log(orig / (rotations * 2.0 * M_PI))) / (2.0 * std::log(p.theta));
    };
    double low = correction_dim(p.beta_fast);
    double high = correction_dim(p.beta_slow);
    if (p.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    std::vector<float> base = default_inv_freq(p.theta, dim);
    inv_freq.resize(base.size());
    for (size_t i = 0; i < base.size(); ++i) {
      double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      double extrapolation_factor = 1.0 - ramp;
      double interp = base[i] / factor;
      inv_freq[i] = static_cast<float>(interp * (1.0 - extrapolation_factor) + base[i] * extrapolation_factor);
    }
    scaling = static_cast<float>(attn);
  } else if (p.type == "longrope") {
    int64_t orig = p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : max_pos_;
    double factor = static_cast<double>(max_pos_) / static_cast<double>(orig);
    const auto& ext = seq_len > orig ? p.long_factor : p.short_factor;
    if (ext.size() != static_cast<size_t>(dim / 2)) {
      throw Error("rope: longrope needs short_factor and long_factor of rot_dim/2 = " + std::to_string(dim / 2) + " values");
    }
    inv_freq = default_inv_freq(p.theta, dim);
    for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = static_cast<float>(inv_freq[i] / ext[i]);
    if (seq_len <= orig) round_to_dtype(inv_freq);
    double attn = p.attention_factor ? *p.attention_factor
                                     : (factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(factor) / std::log(double(orig))));
    scaling = static_cast<float>(attn);
  } else {
    throw Error("rope: unsupported rope type '" + p.type + "'");
  }
}

void Rope::cos_sin(const std::vector<float>& inv_freq, float scaling, int64_t pos, float* cos, float* sin) {
  const float fp = static_cast<float>(pos);
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const float angle = inv_freq[i] * fp;  // float32 product, as transformers computes it
    cos[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * scaling;
    sin[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * scaling;
  }
}

}  // namespace tandem::models
