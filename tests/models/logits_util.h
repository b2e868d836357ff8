// Logits at every position of one prompt, in one forward (or in chunks through
// the KV cache): what the model-level tests compare.
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "base/thread_pool.h"
#include "models/model.h"

namespace tandem::testing {

// chunk 0: the whole prompt in one forward.
inline std::vector<float> logits_all(const models::Model& m, const std::vector<int32_t>& prompt, ThreadPool& pool,
                                     size_t chunk = 0) {
  const auto V = static_cast<size_t>(m.vocab_size());
  std::vector<float> out(prompt.size() * V);
  auto cache = m.new_cache(static_cast<int64_t>(prompt.size()));
  models::Workspace ws;
  const size_t step = chunk == 0 ? prompt.size() : chunk;
  for (size_t p = 0; p < prompt.size(); p += step) {
    const size_t n = std::min(step, prompt.size() - p);
    models::SeqInput in{std::span<const int32_t>(prompt).subspan(p, n), &cache, true, out.data() + p * V};
    m.forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
  }
  return out;
}

}  // namespace tandem::testing
