// Per-step synchronization cost of the thread pool: the round trip of a
// parallel_for whose ranges do (almost) nothing, as a decode step pays it
// once per matmul (5 per layer). Usage: bench_thread_pool [THREADS]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "base/thread_pool.h"

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  tandem::ThreadPool pool(threads);
  std::atomic<int64_t> sink{0};
  auto body = [&](int64_t b, int64_t e) { sink.fetch_add(e - b, std::memory_order_relaxed); };
  for (int i = 0; i < 1000; ++i) pool.parallel_for(pool.size() * 4, body);  // warm-up
  double best = 1e9, total = 0;
  const int rounds = 20, per = 2000;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < per; ++i) pool.parallel_for(pool.size() * 4, body);
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / per;
    best = std::min(best, us);
    total += us;
  }
  std::printf("threads %d: parallel_for round trip %.2f us best, %.2f us mean (%lld ranges)\n", pool.size(), best,
              total / rounds, static_cast<long long>(sink.load()));
  return 0;
}
