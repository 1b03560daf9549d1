// ComputeQueue: jobs run on the worker thread, owners are served round-robin, the bound is
// refused as overloaded, results and errors come back to the KJ loop that submitted them.
#include "server/compute_queue.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "schema/rpc_error.h"

namespace lw {
namespace {

TEST(ComputeQueueTest, OwnersAreServedRoundRobin) {
  ComputeQueue q(100);
  std::mutex mu;
  std::vector<int> order;
  // Hold the worker so every job below is queued before any runs.
  std::atomic<bool> release{false};
  ASSERT_TRUE(q.push(0, [&] {
    while (!release) std::this_thread::yield();
  }));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.try_push(1, [&, i] {
      std::lock_guard<std::mutex> l(mu);
      order.push_back(10 + i);
    }));
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.try_push(2, [&, i] {
      std::lock_guard<std::mutex> l(mu);
      order.push_back(20 + i);
    }));
  }
  release = true;
  q.stop();
  EXPECT_EQ(order, (std::vector<int>{10, 20, 11, 21, 12, 22}));
}

TEST(ComputeQueueTest, BoundIsRefusedAsOverloaded) {
  ComputeQueue q(2);
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  ASSERT_TRUE(q.push(0, [&] {
    started = true;
    while (!release) std::this_thread::yield();
  }));
  while (!started) std::this_thread::yield();
  EXPECT_TRUE(q.try_push(1, [] {}));
  EXPECT_TRUE(q.try_push(1, [] {}));
  EXPECT_FALSE(q.try_push(1, [] {}));  // two waiting already
  EXPECT_TRUE(q.push(1, [] {}));       // unbounded push still goes in

  auto io = kj::setupAsyncIo();
  auto refused = q.submit<int>(3, [] { return 1; });
  try {
    refused.wait(io.waitScope);
    ADD_FAILURE() << "accepted over the bound";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(e.getType(), kj::Exception::Type::OVERLOADED);
    const auto err = error_from_rpc_exception(e);
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->code(), ErrorCode::kSrvBusy);
  }
  release = true;
  q.stop();
  EXPECT_FALSE(q.try_push(1, [] {}));
}

TEST(ComputeQueueTest, SubmitReturnsValuesAndErrorsOnTheLoop) {
  ComputeQueue q(8);
  auto io = kj::setupAsyncIo();
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id job_thread;
  auto value = q.submit<int>(1, [&] {
    job_thread = std::this_thread::get_id();
    return 42;
  });
  EXPECT_EQ(value.wait(io.waitScope), 42);
  EXPECT_NE(job_thread, loop_thread);

  auto bad = q.submit<int>(1, []() -> int { throw Error(ErrorCode::kKvExhausted, "no blocks"); });
  try {
    bad.wait(io.waitScope);
    ADD_FAILURE() << "no error";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(e.getType(), kj::Exception::Type::OVERLOADED);
    EXPECT_EQ(std::string(e.getDescription().cStr()), "LW-KV-001: no blocks");
  }
  auto internal = q.submit<int>(1, []() -> int { throw std::runtime_error("boom"); });
  try {
    internal.wait(io.waitScope);
    ADD_FAILURE() << "no error";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find("LW-INT-001"), std::string::npos);
  }
}

}  // namespace
}  // namespace lw
