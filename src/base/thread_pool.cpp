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
  segments_ = std::make_unique<Segment[]>(static_cast<size_t>(n_threads_));
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

namespace {
constexpr uint64_t pack(int64_t front, int64_t back) {
  return (static_cast<uint64_t>(front) << 32) | static_cast<uint64_t>(back);
}
constexpr int64_t front_of(uint64_t v) { return static_cast<int64_t>(v >> 32); }
constexpr int64_t back_of(uint64_t v) { return static_cast<int64_t>(v & 0xffffffffu); }
}  // namespace

void ThreadPool::run_ranges(int self) {
  // Segment scheduling. Each thread owns one contiguous segment of [0, n) and
  // claims it from the front a quarter of what is left at a time (never less
  // than the grain); a thread whose segment is done takes the back half of the
  // fullest other segment, until none is left. A decode step is ~120 matmuls
  // of 1-150 MB streamed once, and the weights' layouts are read in order
  // (repack.h), so a thread that walks one run of addresses keeps the hardware
  // prefetcher's stream going from claim to claim. The guided self-scheduling
  // this replaces handed out ranges alternately to the two threads, so every
  // range restarted a stream, and every claim moved the shared counter's cache
  // line between cores (~300 ns one way on this VM): a 1.1 MB Q8_0 matmul
  // streamed at 0.70-0.75 of the read bandwidth with 2 threads, 0.90-0.92 with
  // segments (1 thread: 0.93-1.0 either way); 0.5B decode +6-9%, 1B +4%
  // (docs/architecture.md, "Segment scheduling"). Stealing from the back keeps
  // the owner's stream intact, and the two vCPUs of a VM, which do not run at
  // the same speed, still finish together.
  const auto run = [&](int64_t b, int64_t e) {
    try {
      (*fn_)(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  };
  std::atomic<uint64_t>& own = segments_[static_cast<size_t>(self)].front_back;
  for (uint64_t v = own.load(std::memory_order_relaxed);;) {
    const int64_t f = front_of(v), b = back_of(v);
    if (f >= b) break;
    const int64_t size = std::min(b - f, std::max(chunk_, (b - f) / 4));
    if (!own.compare_exchange_weak(v, pack(f + size, b), std::memory_order_relaxed)) continue;
    run(f, f + size);
    v = own.load(std::memory_order_relaxed);
  }
  for (;;) {
    int victim = -1;
    int64_t most = 0;
    for (int t = 0; t < n_threads_; ++t) {
      const uint64_t v = segments_[static_cast<size_t>(t)].front_back.load(std::memory_order_relaxed);
      const int64_t left = back_of(v) - front_of(v);
      if (t != self && left > most) {
        most = left;
        victim = t;
      }
    }
    if (victim < 0) return;
    std::atomic<uint64_t>& seg = segments_[static_cast<size_t>(victim)].front_back;
    for (uint64_t v = seg.load(std::memory_order_relaxed);;) {
      const int64_t f = front_of(v), b = back_of(v);
      if (f >= b) break;  // emptied meanwhile: look again
      const int64_t size = std::min(b - f, std::max(chunk_, (b - f) / 2));
      if (seg.compare_exchange_weak(v, pack(f, b - size), std::memory_order_relaxed)) {
        run(b - size, b);
        break;
      }
    }
  }
}

void ThreadPool::worker_loop(int index) {
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
    run_ranges(index);
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
  // Segments pack front and back into 32 bits each.
  constexpr int64_t kMaxItems = int64_t{1} << 31;
  if (n > kMaxItems) {
    for (int64_t base = 0; base < n; base += kMaxItems) {
      parallel_for(
          std::min(kMaxItems, n - base), [&](int64_t b, int64_t e) { fn(base + b, base + e); }, grain);
    }
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  fn_ = &fn;
  chunk_ = grain;  // the smallest range run_ranges hands out
  for (int t = 0; t < n_threads_; ++t) {
    segments_[static_cast<size_t>(t)].front_back.store(pack(n * t / n_threads_, n * (t + 1) / n_threads_),
                                                        std::memory_order_relaxed);
  }
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
  run_ranges(0);
  t_inside_pool = false;
  while (active_.load(std::memory_order_acquire) != 0) TANDEM_PAUSE();
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace tandem
