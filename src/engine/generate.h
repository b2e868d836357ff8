// Single-sequence generation: prefill the prompt, then decode token by token
// until max tokens or an end-of-sequence id. The continuous-batching scheduler
// (serving) will drive Model::forward with many sequences; this is the
// one-request path used by `tandem run` and the parity tests.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "engine/sampler.h"
#include "models/model.h"

namespace tandem::engine {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> eos_ids;  // stop when one is generated (it is included in the output)
  bool ignore_eos = false;
  int64_t prefill_chunk = 512;   // prompt tokens per forward call
};

struct GenerateResult {
  std::vector<int32_t> ids;    // generated tokens only
  std::string finish_reason;   // "length" | "stop" | "cancelled"
  double prefill_seconds = 0;
  double decode_seconds = 0;   // after the first generated token
};

// on_token is called after each generated token; returning false stops
// generation ("cancelled"). Throws tandem::Error on bad ids or an overlong context.
GenerateResult generate(const models::Model& model, std::span<const int32_t> prompt, const GenerateOptions& opts,
                        ThreadPool& pool, const std::function<bool(int32_t)>& on_token = {});

}  // namespace tandem::engine
