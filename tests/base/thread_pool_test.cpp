#include "base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace tandem {
namespace {

TEST(ThreadPool, CoversEveryIndexOnceAndPropagatesErrors) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
  EXPECT_THROW(pool.parallel_for(100, [](int64_t b, int64_t) {
    if (b > 10) throw std::runtime_error("boom");
  }), std::runtime_error);
  // Still usable afterwards, and nested calls run inline.
  std::atomic<int> total{0};
  pool.parallel_for(8, [&](int64_t b, int64_t e) {
    pool.parallel_for(e - b, [&](int64_t x, int64_t y) { total += static_cast<int>(y - x); });
  });
  EXPECT_EQ(total.load(), 8);
}

TEST(ThreadPool, ConcurrentCallersAreSerializedSafely) {
  // Two "engines" sharing one pool from two threads.
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  auto work = [&] {
    for (int rep = 0; rep < 200; ++rep) {
      pool.parallel_for(64, [&](int64_t b, int64_t e) { sum += e - b; });
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(sum.load(), 2 * 200 * 64);
}

// Segment scheduling (thread_pool.cpp): every index exactly once for any
// count, thread number and grain, including fewer items than threads.
TEST(ThreadPool, SegmentsCoverEveryIndexOnce) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {int64_t{2}, int64_t{3}, int64_t{5}, int64_t{17}, int64_t{72}, int64_t{1001}}) {
      for (int64_t grain : {int64_t{1}, int64_t{3}, int64_t{16}}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(
            n,
            [&](int64_t b, int64_t e) {
              ASSERT_LT(b, e) << "empty range";
              for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
            },
            grain);
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[size_t(i)].load(), 1) << threads << " " << n << " " << grain << " " << i;
      }
    }
  }
}

// A thread stalled in its first range (a vCPU descheduled by the hypervisor)
// does not hold the rest of its segment: the others take it from the back.
TEST(ThreadPool, StalledThreadsSegmentIsTaken) {
  ThreadPool pool(2);
  std::atomic<int64_t> by_caller{0}, by_worker{0};
  const auto caller = std::this_thread::get_id();
  std::atomic<bool> stalled{false};
  pool.parallel_for(1000, [&](int64_t b, int64_t e) {
    const bool mine = std::this_thread::get_id() == caller;
    if (mine && !stalled.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (mine ? by_caller : by_worker) += e - b;
  });
  EXPECT_EQ(by_caller.load() + by_worker.load(), 1000);
  // The caller's first claim is a quarter of its 500; the worker takes most of the rest.
  EXPECT_GT(by_worker.load(), 700);
}

// More items than the 32-bit halves of a segment word hold.
TEST(ThreadPool, HugeCountsAreSplit) {
  ThreadPool pool(2);
  const int64_t n = (int64_t{1} << 32) + 5;
  std::atomic<int64_t> total{0}, lo{n}, hi{0};
  pool.parallel_for(n, [&](int64_t b, int64_t e) {
    total += e - b;
    int64_t l = lo.load();
    while (b < l && !lo.compare_exchange_weak(l, b)) {
    }
    int64_t h = hi.load();
    while (e > h && !hi.compare_exchange_weak(h, e)) {
    }
  });
  EXPECT_EQ(total.load(), n);
  EXPECT_EQ(lo.load(), 0);
  EXPECT_EQ(hi.load(), n);
}

TEST(ThreadPool, SingleThreadRunsInline) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.size(), 1);
  int calls = 0;
  pool.parallel_for(10, [&](int64_t b, int64_t e) {
    ++calls;
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 10);
  });
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace tandem
