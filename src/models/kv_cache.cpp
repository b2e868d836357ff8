#include "models/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace tandem::models {

KvCache::KvCache(int64_t n_layers, int64_t kv_dim, int64_t max_tokens)
    : n_layers_(n_layers), kv_dim_(kv_dim), max_tokens_(max_tokens) {
  k_.resize(static_cast<size_t>(n_layers));
  v_.resize(static_cast<size_t>(n_layers));
}

void KvCache::reserve(int64_t n) {
  if (n > max_tokens_) {
    throw Error("context length exceeded: " + std::to_string(n) + " tokens > the maximum of " +
                std::to_string(max_tokens_));
  }
  if (n <= capacity_) return;
  int64_t cap = std::min(max_tokens_, std::max<int64_t>({n, capacity_ * 2, 64}));
  for (size_t l = 0; l < static_cast<size_t>(n_layers_); ++l) {
    for (auto* buf : {&k_[l], &v_[l]}) {
      AlignedBuffer<float> grown(static_cast<size_t>(cap * kv_dim_));
      if (length_ > 0) std::memcpy(grown.data(), buf->data(), static_cast<size_t>(length_ * kv_dim_) * sizeof(float));
      *buf = std::move(grown);
    }
  }
  capacity_ = cap;
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) throw Error("KvCache::truncate: position out of range");
  length_ = n;
}

void KvCache::set_length(int64_t n) {
  TANDEM_CHECK(n >= 0 && n <= capacity_, "KvCache::set_length beyond reserved capacity");
  length_ = n;
}

uint64_t KvCache::bytes() const {
  return static_cast<uint64_t>(capacity_) * static_cast<uint64_t>(kv_dim_) * sizeof(float) * 2 *
         static_cast<uint64_t>(n_layers_);
}

}  // namespace tandem::models
