// Throughput measurement of one model on this machine (`tandem bench`):
// prefill and batch-1 decode tokens/s next to the machine's read bandwidth
// measured in the same run, which bounds decode from above: every decoded token
// streams all weight matrices once (the roofline).
#pragma once

#include <cstdint>
#include <string>

#include "base/thread_pool.h"
#include "models/model.h"

namespace tandem::engine {

// Bytes per second of a parallel summing read of `bytes` of memory (best of `reps`).
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int reps = 5);

struct BenchOptions {
  int64_t prompt_len = 512;
  int64_t gen = 128;
  int reps = 3;  // each phase is timed this many times; the median is reported
  // Decode from a cache already holding this many tokens (llama-bench's
  // -d/--n-depth): decode's attention reads grow with the context.
  int64_t depth = 0;
  // After the timed runs, one more decode run with a StepProfile attached:
  // where a decode step's time goes, per operation.
  bool profile = false;
};

struct BenchResult {
  int64_t prompt_len = 0, gen = 0, depth = 0;
  double prefill_tok_s = 0, decode_tok_s = 0;
  uint64_t decode_bytes = 0;     // weight bytes read per decoded token
  double read_bandwidth = 0;     // bytes/s, the higher of samples just before and after decode
  double roofline_tok_s = 0;     // read_bandwidth / decode_bytes
  double roofline_fraction = 0;  // decode_tok_s / roofline_tok_s
  models::StepProfile profile;   // decode, when BenchOptions::profile (steps == 0 otherwise)
};

// Prefill: one forward of prompt_len (pseudo-random) tokens into an empty
// cache. Decode: `gen` single-token steps from an empty cache, as llama-bench's
// tg test does, or from `depth` tokens of context (filled untimed).
BenchResult run_bench(const models::Model& model, const BenchOptions& opts, ThreadPool& pool);

}  // namespace tandem::engine
