#include "base/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TANDEM_PAUSE() _mm_pause()
#else
#define TANDEM_PAUSE() ((void)0)
#endif

namespace tandem {
namespace {
thread_local bool t_inside_pool = false;
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  // Guided self-scheduling: each claim takes 1/(2 x threads) of what is left,
  // never less than the grain, so the first ranges are large (few atomics) and
  // the last ones small, so the threads finish together. A decode step's
  // matmuls are memory-bound and the two vCPUs of a VM do not run at the same
  // speed: with 4 fixed ranges per thread both threads sat waiting 12.6% of a
  // 0.5B Q4_K decode (perf), with these 9.2%; one static range per thread
  // decoded ~15% slower than either (docs/architecture.md).
  const int64_t divisor = 2 * int64_t{n_threads_};
  for (;;) {
    int64_t begin = next_.load(std::memory_order_relaxed), size = 0;
    do {
      if (begin >= n_) return;
      size = std::min(n_ - begin, std::max(chunk_, (n_ - begin) / divisor));
    } while (!next_.compare_exchange_weak(begin, begin + size, std::memory_order_relaxed));
    try {
      (*fn_)(begin, begin + size);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop(int /*index*/) {
  t_inside_pool = true;
  uint64_t seen = 0;
  for (;;) {
    // Spin for a new job for a short while, then sleep.
    auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    int polls = 0;
    while (generation_.load(std::memory_order_acquire) == seen) {
      TANDEM_PAUSE();
      if (++polls % 64 == 0 && std::chrono::steady_clock::now() > spin_until) break;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      // Sleep. sleeping_ is raised before the last look at generation_, and
      // parallel_for bumps generation_ before it looks at sleeping_ (both
      // sequentially consistent), so one of the two always sees the other:
      // no wake-up is lost, and a busy pool never touches the mutex.
      std::unique_lock<std::mutex> lock(mutex_);
      sleeping_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lock, [&] {
        return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_seq_cst) != seen;
      });
      sleeping_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    run_chunks();
    active_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || t_inside_pool || n <= grain) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  fn_ = &fn;
  n_ = n;
  chunk_ = grain;  // the smallest range run_chunks hands out
  next_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  active_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst) > 0) {
    // A sleeper may be between its last look and wait(): taking the mutex
    // waits until it is inside wait(), so the notification reaches it.
    { std::lock_guard<std::mutex> lock(mutex_); }
    wake_.notify_all();
  }
  t_inside_pool = true;
  run_chunks();
  t_inside_pool = false;
  while (active_.load(std::memory_order_acquire) != 0) TANDEM_PAUSE();
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace tandem
