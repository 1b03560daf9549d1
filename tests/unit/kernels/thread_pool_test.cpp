#include "kernels/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace lw {
namespace {

// Every index in [0, n) is visited exactly once, chunks are non-empty, in range and (except
// possibly the last) at least `grain` long.
void check_cover(ThreadPool& pool, int64_t n, int64_t grain) {
  std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[static_cast<size_t>(n + 1)]);
  for (int64_t i = 0; i <= n; ++i) hits[i] = 0;
  std::atomic<int> bad_chunks{0};
  pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    if (begin < 0 || end > n || begin >= end) ++bad_chunks;
    if (end - begin < grain && end != n) ++bad_chunks;
    for (int64_t i = begin; i < end && i >= 0 && i < n; ++i) hits[i]++;
  });
  EXPECT_EQ(bad_chunks.load(), 0) << "n=" << n << " grain=" << grain;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(hits[i].load(), 1) << "index " << i << " n=" << n << " grain=" << grain;
  }
}

TEST(ThreadPoolTest, CoversEachIndexOnce) {
  for (unsigned threads : {1u, 2u, 3u, 5u}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {1, 2, 3, 7, 16, 33, 100, 257, 1000, 4099}) {
      for (int64_t grain : {0, 1, 2, 5, 64, 5000}) check_cover(pool, n, grain);
    }
  }
}

TEST(ThreadPoolTest, EmptyRangeCallsNothing) {
  ThreadPool pool(2);
  int calls = 0;
  pool.parallel_for(0, 1, [&](int64_t, int64_t) { ++calls; });
  pool.parallel_for(-5, 1, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPoolTest, UsesSeveralThreadsAndIsReusable) {
  ThreadPool pool(3);
  std::set<std::thread::id> seen;
  std::mutex mu;
  for (int rep = 0; rep < 200; ++rep) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(1000, 1, [&](int64_t b, int64_t e) {
      {
        std::lock_guard<std::mutex> lock(mu);
        seen.insert(std::this_thread::get_id());
      }
      for (int64_t i = b; i < e; ++i) sum += i;
      // Give the other threads time to pick up chunks.
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    });
    ASSERT_EQ(sum.load(), 999 * 1000 / 2);
  }
  EXPECT_GE(seen.size(), 2u);
  EXPECT_LE(seen.size(), 3u);
}

}  // namespace
}  // namespace lw
