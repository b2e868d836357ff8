// A fixed pool of worker threads for data-parallel loops in the forward pass.
//
// One pool is meant to be shared by every model in the process (DESIGN.md,
// "Sharing the machine"): parallel_for calls from different engines are
// serialized, so two models never oversubscribe the cores. A parallel_for
// issued from inside a worker runs inline instead of deadlocking.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem {

class ThreadPool {
 public:
  // n_threads counts the calling thread: n_threads - 1 workers are started.
  // 0 means "all hardware threads".
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) over [0, n) split in contiguous ranges of at least
  // `grain` items. Blocks until all ranges are done. The first exception thrown
  // by any range is rethrown here, after every range has finished.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                    int64_t grain = 1);

 private:
  void worker_loop(int index);
  // Runs ranges of the job in flight as thread `self` (0: the caller of
  // parallel_for, 1..: the workers): its own segment from the front, then the
  // back halves of the others' (see thread_pool.cpp).
  void run_ranges(int self);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;

  std::mutex run_mutex_;  // one parallel_for at a time

  // Workers spin briefly on generation_ before sleeping on wake_: a decode
  // step issues hundreds of short parallel_for calls, and a condition-variable
  // wake-up per call costs more than the work. Idle workers sleep after ~50 µs;
  // the mutex is taken only to sleep and to wake a sleeper.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};

  // The job in flight: [0, n) is cut into one contiguous segment per thread,
  // each [front, back) packed into one atomic word (front << 32 | back) on its
  // own cache line.
  struct alignas(64) Segment {
    std::atomic<uint64_t> front_back{0};
  };
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t chunk_ = 1;
  std::unique_ptr<Segment[]> segments_;
  std::atomic<int> active_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace tandem
