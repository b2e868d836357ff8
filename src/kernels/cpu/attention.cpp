#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>

namespace tandem::kernels {

// The reference: each query head on its own, in the plain order of the formula.
void attend_group_scalar(const AttendGroupArgs& a) {
  const int64_t n = a.last - a.first + 1, hd = a.head_dim;
  for (int64_t g = 0; g < a.group; ++g) {
    const float* qh = a.q + g * hd;
    float* sc = a.scores + g * n;
    float max_s = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      const float* kr = a.k.row(a.first + j) + a.kv_offset;
      float s = 0.0f;
      for (int64_t i = 0; i < hd; ++i) s += qh[i] * kr[i];
      s *= a.scale;
      if (a.softcap > 0.0f) s = std::tanh(s / a.softcap) * a.softcap;
      sc[j] = s;
      max_s = std::max(max_s, s);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      sc[j] = std::exp(sc[j] - max_s);
      sum += sc[j];
    }
    const float inv = 1.0f / sum;
    float* o = a.out + g * hd;
    std::fill(o, o + hd, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float* vr = a.v.row(a.first + j) + a.kv_offset;
      const float w = sc[j] * inv;
      for (int64_t i = 0; i < hd; ++i) o[i] += w * vr[i];
    }
  }
}

void attend_group_with(Isa isa, const AttendGroupArgs& a) {
  if (isa >= Isa::kAvx2) {
    attend_group_avx2(a);
  } else {
    attend_group_scalar(a);
  }
}

void attend_group(const AttendGroupArgs& a) {
  static const Isa isa = active_isa();
  attend_group_with(isa, a);
}

}  // namespace tandem::kernels
