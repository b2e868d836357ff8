// Keys and values of one sequence, per layer, as float32 rows of
// n_kv_heads * head_dim. Grows on demand up to max_tokens. The engine's paged
// cache (block pool + block tables) will replace the storage, not this role:
// the forward pass only asks for the rows of a layer.
#pragma once

#include <cstdint>
#include <vector>

#include "base/aligned_buffer.h"

namespace tandem::models {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t kv_dim, int64_t max_tokens);

  int64_t length() const { return length_; }
  int64_t max_tokens() const { return max_tokens_; }
  int64_t kv_dim() const { return kv_dim_; }
  // Makes room for n tokens in total; throws tandem::Error past max_tokens.
  void reserve(int64_t n);
  // Forget everything from position n on (n <= length()).
  void truncate(int64_t n);
  void set_length(int64_t n);
  uint64_t bytes() const;

  float* keys(int64_t layer) { return k_[static_cast<size_t>(layer)].data(); }
  float* values(int64_t layer) { return v_[static_cast<size_t>(layer)].data(); }

 private:
  int64_t n_layers_, kv_dim_, max_tokens_;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  std::vector<AlignedBuffer<float>> k_, v_;
};

}  // namespace tandem::models
