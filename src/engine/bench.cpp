#include "engine/bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <vector>

#include "base/host_buffer.h"
#include "base/error.h"
#include "kernels/cpu/vec.h"

namespace tandem::engine {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int reps) {
  // Each thread streams its contiguous share with 32-byte loads into four
  // accumulators (kernels/cpu/vec.h), so the loop is bound by memory, not by
  // adds. The buffer is written first, so its pages exist. It is a HostBuffer,
  // in 2 MiB pages like the weights: from 4 KiB pages the same loop measured
  // 8-20% less, a roofline our decode could beat without being at the limit.
  bytes = bytes / 4096 * 4096;
  HostBuffer hb(bytes);
  auto* buf = reinterpret_cast<uint64_t*>(hb.data());
  for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i) buf[i] = i;
  const int64_t parts = pool.size();
  const size_t part = bytes / static_cast<size_t>(parts) / 4096 * 4096;
  double best = 0;
  std::atomic<uint64_t> sink{0};
  for (int rep = 0; rep < reps; ++rep) {
    const auto t = Clock::now();
    pool.parallel_for(parts, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const auto* base = reinterpret_cast<const uint8_t*>(buf) + static_cast<size_t>(p) * part;
        sink.fetch_add(kernels::vec::sum_bytes(base, part), std::memory_order_relaxed);
      }
    });
    best = std::max(best, static_cast<double>(part * static_cast<size_t>(parts)) / since(t));
  }
  if (sink.load() == 1) throw Error("unreachable");  // keeps the sums alive
  return best;
}

BenchResult run_bench(const models::Model& model, const BenchOptions& opts, ThreadPool& pool) {
  const int64_t V = model.vocab_size();
  const int64_t ctx = model.config().max_position_embeddings;
  if (opts.prompt_len < 1 || opts.gen < 1) throw Error("bench: --prompt-len and --gen must be at least 1");
  if (opts.depth < 0) throw Error("bench: --depth must not be negative");
  if (opts.prompt_len > ctx || opts.depth + opts.gen + 1 > ctx) {
    throw Error("bench: --prompt-len " + std::to_string(opts.prompt_len) + " / --depth " + std::to_string(opts.depth) +
                " + --gen " + std::to_string(opts.gen) + " exceed the model's context of " + std::to_string(ctx));
  }
  BenchResult r;
  r.prompt_len = opts.prompt_len;
  r.gen = opts.gen;
  r.depth = opts.depth;
  std::vector<int32_t> prompt(static_cast<size_t>(std::max(opts.prompt_len, opts.depth + 1)));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % static_cast<size_t>(V));
  std::vector<float> logits(static_cast<size_t>(V));
  models::Workspace ws;
  auto step = [&](std::span<const int32_t> toks, models::KvCache& c) {
    models::SeqInput in{toks, &c, false, logits.data()};
    model.forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
  };
  {  // warm-up: page in the weights, size the workspace
    auto c = model.new_cache(opts.prompt_len + 1);
    step(std::span<const int32_t>(prompt.data(), static_cast<size_t>(opts.prompt_len)), c);
  }
  std::vector<double> prefill, decode;
  for (int rep = 0; rep < std::max(1, opts.reps); ++rep) {
    auto c = model.new_cache(opts.prompt_len);
    auto t = Clock::now();
    step(std::span<const int32_t>(prompt.data(), static_cast<size_t>(opts.prompt_len)), c);
    prefill.push_back(static_cast<double>(opts.prompt_len) / since(t));
  }
  // The roofline is the read bandwidth measured just before and just after
  // the decode repetitions, the higher of the two: on a shared VM bandwidth
  // drifts by tens of percent within minutes, and the higher sample is the
  // conservative roofline (a lower fraction).
  const double bw_before = measure_read_bandwidth(pool);
  // One decode run: depth + 1 tokens of context filled untimed, then `gen`
  // greedy single-token steps; returns their tokens/s.
  auto decode_run = [&](models::StepProfile* profile) {
    auto c = model.new_cache(opts.depth + opts.gen + 1);
    step(std::span<const int32_t>(prompt.data(), static_cast<size_t>(opts.depth + 1)), c);
    ws.profile = profile;
    auto t = Clock::now();
    for (int64_t i = 0; i < opts.gen; ++i) {
      const auto tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      step(std::span<const int32_t>(&tok, 1), c);
    }
    const double tok_s = static_cast<double>(opts.gen) / since(t);
    ws.profile = nullptr;
    return tok_s;
  };
  for (int rep = 0; rep < std::max(1, opts.reps); ++rep) decode.push_back(decode_run(nullptr));
  // Untimed: the profile's clock reads are not in the numbers above.
  if (opts.profile) decode_run(&r.profile);
  r.prefill_tok_s = median(prefill);
  r.decode_tok_s = median(decode);
  r.decode_bytes = model.info().decode_bytes;
  r.read_bandwidth = std::max(bw_before, measure_read_bandwidth(pool));
  r.roofline_tok_s = r.read_bandwidth / static_cast<double>(r.decode_bytes);
  r.roofline_fraction = r.decode_tok_s / r.roofline_tok_s;
  return r;
}

}  // namespace tandem::engine
