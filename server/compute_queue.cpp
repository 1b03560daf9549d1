#include "server/compute_queue.h"

#include <string>

#include "schema/rpc_error.h"

namespace lw {

ComputeQueue::ComputeQueue(size_t max_queued)
    : max_queued_(max_queued), worker_([this] { run(); }) {}

ComputeQueue::~ComputeQueue() { stop(); }

bool ComputeQueue::try_push(uint64_t owner, Job job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queued_ >= max_queued_) return false;
    queues_[owner].push_back(std::move(job));
    ++queued_;
  }
  cv_.notify_one();
  return true;
}

bool ComputeQueue::push(uint64_t owner, Job job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    queues_[owner].push_back(std::move(job));
    ++queued_;
  }
  cv_.notify_one();
  return true;
}

void ComputeQueue::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

size_t ComputeQueue::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_;
}

void ComputeQueue::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return queued_ > 0 || stopping_; });
      if (queued_ == 0) return;  // stopping and drained
      // Round-robin: the first owner at or after the cursor, wrapping around.
      auto it = queues_.lower_bound(next_owner_);
      if (it == queues_.end()) it = queues_.begin();
      job = std::move(it->second.front());
      it->second.pop_front();
      --queued_;
      next_owner_ = it->first + 1;
      if (it->second.empty()) queues_.erase(it);
    }
    job();  // submit() jobs catch everything; a raw push() job must not throw
  }
}

kj::Exception ComputeQueue::current_exception_to_kj() {
  try {
    throw;
  } catch (const Error& e) {
    return to_rpc_exception(e);
  } catch (const kj::Exception& e) {
    return e;
  } catch (const std::exception& e) {
    return to_rpc_exception(
        Error(ErrorCode::kInternal, std::string("compute thread: ") + e.what()));
  } catch (...) {
    return to_rpc_exception(Error(ErrorCode::kInternal, "compute thread: unknown exception"));
  }
}

kj::Exception ComputeQueue::busy_exception(size_t depth) {
  return to_rpc_exception(Error(
      ErrorCode::kSrvBusy, "server busy: " + std::to_string(depth) +
                               " calls already wait for the compute thread (max_queued_calls)"));
}

}  // namespace lw
