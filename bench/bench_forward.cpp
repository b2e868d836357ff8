// Prefill and decode throughput of one model on this machine, next to the
// machine's measured read bandwidth (the decode roofline: weight bytes read per
// token / bandwidth). Usage: bench_forward [MODEL_DIR] [THREADS] [PROMPT_LEN] [GEN] [f32|mmap]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "base/strings.h"
#include "base/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "models/model.h"

using namespace tandem;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// Bytes per second of a parallel summing read over `bytes` (best of 3).
double read_bandwidth(ThreadPool& pool, size_t bytes) {
  // Integer sums vectorize (unlike float sums without -ffast-math), so the
  // loop is limited by memory, not by add latency.
  AlignedBuffer<uint64_t> buf(bytes / sizeof(uint64_t));
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = i;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint64_t> sums(static_cast<size_t>(pool.size()) * 16, 0);
    auto t = clock_type::now();
    std::atomic<int> slot{0};
    pool.parallel_for(
        static_cast<int64_t>(buf.size()),
        [&](int64_t b, int64_t e) {
          uint64_t s = 0;
          for (int64_t i = b; i < e; ++i) s += buf[size_t(i)];
          sums[size_t(slot++ % int(sums.size()))] += s;
        },
        1 << 20);
    double s = seconds_since(t);
    if (std::accumulate(sums.begin(), sums.end(), uint64_t{0}) == 1) std::puts("");  // keep the loop
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string dir = argc > 1 ? argv[1] : "models/demo";
    int threads = argc > 2 ? std::atoi(argv[2]) : 0;
    int64_t prompt_len = argc > 3 ? std::atoll(argv[3]) : 128;
    int64_t gen = argc > 4 ? std::atoll(argv[4]) : 64;
    ThreadPool pool(threads);
    models::LoadOptions lo;
    const std::string mode = argc > 5 ? argv[5] : "";
    lo.convert_to_f32 = mode == "f32";
    lo.use_mmap = mode == "mmap";
    auto model = models::Model::load(dir, lo);
    const auto info = model->info();
    const int64_t V = model->vocab_size();
    prompt_len = std::min<int64_t>(prompt_len, model->config().max_position_embeddings - gen - 1);

    std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % static_cast<size_t>(V));
    std::vector<float> logits(static_cast<size_t>(V));
    models::Workspace ws;

    // Warm-up, then prefill timing.
    {
      auto c = model->new_cache(prompt_len + gen + 1);
      models::SeqInput in{std::span<const int32_t>(prompt).first(std::min<size_t>(16, prompt.size())), &c, false, logits.data()};
      model->forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
    }
    auto cache = model->new_cache(prompt_len + gen + 1);
    auto t0 = clock_type::now();
    models::SeqInput in{prompt, &cache, false, logits.data()};
    model->forward(std::span<const models::SeqInput>(&in, 1), ws, pool);
    double prefill_s = seconds_since(t0);

    auto t1 = clock_type::now();
    int32_t tok = 1;
    for (int64_t i = 0; i < gen; ++i) {
      models::SeqInput d{std::span<const int32_t>(&tok, 1), &cache, false, logits.data()};
      model->forward(std::span<const models::SeqInput>(&d, 1), ws, pool);
      tok = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    double decode_s = seconds_since(t1);

    double bw = read_bandwidth(pool, size_t{1} << 30);
    double decode_tps = static_cast<double>(gen) / decode_s;
    double roofline = bw / static_cast<double>(info.weight_bytes);
    std::printf("| model | dtype | weights | threads | isa | prefill %lld tok/s | decode tok/s | read GB/s | roofline tok/s | decode / roofline |\n",
                (long long)prompt_len);
    std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
    std::printf("| %s | %s | %s | %d | %s | %.1f | %.1f | %.1f | %.1f | %.2f |\n", dir.c_str(), info.weight_dtypes.c_str(),
                format_bytes(info.weight_bytes).c_str(), pool.size(), std::string(kernels::isa_name(kernels::active_isa())).c_str(),
                static_cast<double>(prompt_len) / prefill_s, decode_tps, bw / 1e9, roofline, decode_tps / roofline);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_forward: error: %s\n", e.what());
    return 1;
  }
}
