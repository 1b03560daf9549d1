// The compute thread of one device: a worker thread fed by a queue of jobs, with one FIFO
// per owner (client connection) served round-robin so one client's burst cannot starve the
// others, and a bound on queued jobs (overload is refused, not buffered without end).
// submit() hands a job's result back to the KJ event loop that called it through a
// cross-thread fulfiller: nothing on the event loop waits for the device.
// Threading: push/submit/depth from any thread; jobs run one at a time on the worker, in
// per-owner order. Jobs must not touch event-loop objects.
#pragma once

#include <kj/async.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace lw {

class ComputeQueue {
 public:
  using Job = std::function<void()>;

  // max_queued: jobs waiting (not running) over all owners that try_push accepts.
  explicit ComputeQueue(size_t max_queued);
  // stop(): runs what is queued, then joins the worker.
  ~ComputeQueue();
  ComputeQueue(const ComputeQueue&) = delete;
  ComputeQueue& operator=(const ComputeQueue&) = delete;

  // Enqueues under `owner`; false when max_queued jobs are waiting or the queue is stopped.
  bool try_push(uint64_t owner, Job job);
  // Enqueues regardless of the bound (session close, loading); false only once stopped.
  bool push(uint64_t owner, Job job);
  // Stops accepting, runs every queued job, joins. Idempotent.
  void stop();
  size_t depth() const;

  // Runs fn on the worker and resolves the returned promise on the calling event loop.
  // lw::Error becomes its RPC exception (schema/rpc_error.h), anything else LW-INT-001.
  // bounded: refuse with LW-SRV-002 (overloaded) when the queue is full.
  template <typename T>
  kj::Promise<T> submit(uint64_t owner, std::function<T()> fn, bool bounded = true);

 private:
  void run();
  // Rejections for submit(), kept out of the template.
  static kj::Exception current_exception_to_kj();
  static kj::Exception busy_exception(size_t depth);

  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::deque<Job>> queues_;  // owner -> its jobs, FIFO
  uint64_t next_owner_ = 0;                     // round-robin cursor: serve owners >= this next
  size_t queued_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

template <typename T>
kj::Promise<T> ComputeQueue::submit(uint64_t owner, std::function<T()> fn, bool bounded) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
  auto fulfiller =
      std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<T>>>(kj::mv(paf.fulfiller));
  Job job = [fulfiller, fn = std::move(fn)]() {
    try {
      if constexpr (std::is_void_v<T>) {
        fn();
        (*fulfiller)->fulfill();
      } else {
        (*fulfiller)->fulfill(fn());
      }
    } catch (...) {
      (*fulfiller)->reject(current_exception_to_kj());
    }
  };
  const bool accepted = bounded ? try_push(owner, std::move(job)) : push(owner, std::move(job));
  if (!accepted) return kj::Promise<T>(busy_exception(depth()));
  return kj::mv(paf.promise);
}

}  // namespace lw
