// A fixed pool of worker threads for the CPU kernels. Created by whoever owns the backend
// (sized to the cores) and passed in; there is no global pool. parallel_for splits [0, n)
// into contiguous chunks, runs them on the workers and the calling thread, and returns when
// all are done. One parallel_for at a time per pool (callers serialize); fn must not throw.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lw {

class ThreadPool {
 public:
  // n_threads counts the calling thread; 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(unsigned n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n). `grain` is the smallest chunk.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(unsigned index);
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 0;
  int64_t next_ = 0;      // next chunk start, guarded by mu_
  unsigned busy_ = 0;     // workers still running the current job
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace lw
