#include "engine/generate.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"

namespace tandem::engine {

GenerateResult generate(const models::Model& model, std::span<const int32_t> prompt, const GenerateOptions& opts,
                        ThreadPool& pool, const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) throw Error("the prompt is empty");
  if (opts.max_new_tokens < 0) throw Error("max tokens must be >= 0");
  Sampler sampler(opts.sampling);
  const int64_t V = model.vocab_size();
  const int64_t needed = static_cast<int64_t>(prompt.size()) + opts.max_new_tokens;
  const int64_t limit = model.config().max_position_embeddings;
  if (static_cast<int64_t>(prompt.size()) > limit) {
    throw Error("prompt of " + std::to_string(prompt.size()) + " tokens exceeds the context length of " +
                std::to_string(limit));
  }
  models::KvCache cache = model.new_cache(std::min(needed, limit));
  models::Workspace ws;
  std::vector<float> logits(static_cast<size_t>(V));
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  GenerateResult res;
  using clock = std::chrono::steady_clock;

  auto t0 = clock::now();
  const int64_t chunk = std::max<int64_t>(1, opts.prefill_chunk);
  for (size_t i = 0; i < prompt.size(); i += static_cast<size_t>(chunk)) {
    size_t n = std::min(prompt.size() - i, static_cast<size_t>(chunk));
    models::SeqInput in{prompt.subspan(i, n), &cache, false, logits.data()};
    model.forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
  }
  auto t1 = clock::now();
  res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  res.finish_reason = "length";

  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    int32_t tok = sampler.sample(logits, history);
    res.ids.push_back(tok);
    history.push_back(tok);
    if (on_token && !on_token(tok)) {
      res.finish_reason = "cancelled";
      break;
    }
    if (!opts.ignore_eos && std::find(opts.eos_ids.begin(), opts.eos_ids.end(), tok) != opts.eos_ids.end()) {
      res.finish_reason = "stop";
      break;
    }
    if (step + 1 == opts.max_new_tokens) break;
    if (cache.length() >= limit) {
      res.finish_reason = "length";
      break;
    }
    models::SeqInput in{std::span<const int32_t>(&history.back(), 1), &cache, false, logits.data()};
    model.forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
  }
  res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return res;
}

}  // namespace tandem::engine
