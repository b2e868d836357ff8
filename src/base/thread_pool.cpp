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
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    int64_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= n_) break;
    int64_t end = std::min(n_, begin + chunk_);
    try {
      (*fn_)(begin, end);
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
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (generation_.load(std::memory_order_acquire) == seen && !stop_) {
        sleeping_.fetch_add(1, std::memory_order_acq_rel);
        wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_acquire) != seen; });
        sleeping_.fetch_sub(1, std::memory_order_acq_rel);
      }
      if (stop_) return;
      seen = generation_.load(std::memory_order_acquire);
    }
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
  // About 4 ranges per thread balances uneven rows without much scheduling cost.
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t{n_threads_} * 4);
  fn_ = &fn;
  n_ = n;
  chunk_ = (n + chunks - 1) / chunks;
  next_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  active_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  if (sleeping_.load(std::memory_order_acquire) > 0) wake_.notify_all();
  t_inside_pool = true;
  run_chunks();
  t_inside_pool = false;
  while (active_.load(std::memory_order_acquire) != 0) TANDEM_PAUSE();
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace tandem
