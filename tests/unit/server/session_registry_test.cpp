// SessionRegistry with an injected clock: max_sessions, ownership, TTL expiry (never while a
// call is in flight), and the reasons a closed session reports.
#include "server/session_registry.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"

namespace lw {
namespace {

using Clock = SessionRegistry::Clock;
using std::chrono::seconds;

TEST(SessionRegistryTest, MaxSessionsIsOverloaded) {
  SessionRegistry r(2, seconds(10));
  const auto t = Clock::time_point{};
  const uint64_t a = r.open(1, 16, t);
  const uint64_t b = r.open(1, 16, t);
  EXPECT_NE(a, b);
  try {
    r.open(2, 16, t);
    ADD_FAILURE() << "third session accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kSrvSessionLimit);
    EXPECT_EQ(e.kind(), ErrorKind::Overloaded);
    EXPECT_NE(std::string(e.what()).find("max_sessions is 2"), std::string::npos);
  }
  EXPECT_TRUE(r.remove(a, "closed by the client"));
  EXPECT_NO_THROW(r.open(2, 16, t));
}

TEST(SessionRegistryTest, RemoveOwnerTakesOnlyThatOwnersSessions) {
  SessionRegistry r(10, seconds(10));
  const auto t = Clock::time_point{};
  const uint64_t a1 = r.open(1, 8, t);
  const uint64_t b1 = r.open(2, 8, t);
  const uint64_t a2 = r.open(1, 8, t);
  std::vector<uint64_t> ids = r.remove_owner(1, "gone");
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint64_t>{a1, a2}));
  EXPECT_EQ(r.find(a1), nullptr);
  ASSERT_NE(r.find(b1), nullptr);
  EXPECT_EQ(r.find(b1)->max_tokens, 8u);
  EXPECT_EQ(r.closed_reason(a2), "gone");
  EXPECT_EQ(r.closed_reason(999), "never opened");
}

TEST(SessionRegistryTest, ExpiresIdleSessionsButNotBusyOnes) {
  SessionRegistry r(10, seconds(5));
  const auto t0 = Clock::time_point{} + seconds(100);
  const uint64_t idle = r.open(1, 8, t0);
  const uint64_t busy = r.open(1, 8, t0);
  const uint64_t fresh = r.open(1, 8, t0 + seconds(4));
  r.find(busy)->in_flight = 1;
  EXPECT_TRUE(r.expire(t0 + seconds(5)).empty());  // exactly the TTL: not yet
  EXPECT_EQ(r.expire(t0 + seconds(6)), std::vector<uint64_t>{idle});
  EXPECT_NE(r.closed_reason(idle).find("session_ttl_seconds = 5"), std::string::npos);
  EXPECT_NE(r.find(busy), nullptr);
  EXPECT_NE(r.find(fresh), nullptr);
  r.find(busy)->in_flight = 0;
  EXPECT_EQ(r.expire(t0 + seconds(6)), std::vector<uint64_t>{busy});
  EXPECT_EQ(r.expire(t0 + seconds(10)), std::vector<uint64_t>{fresh});
  EXPECT_EQ(r.size(), 0u);
}

TEST(SessionRegistryTest, ZeroTtlNeverExpires) {
  SessionRegistry r(10, seconds(0));
  const uint64_t a = r.open(1, 8, Clock::time_point{});
  EXPECT_TRUE(r.expire(Clock::time_point{} + seconds(1000000)).empty());
  EXPECT_NE(r.find(a), nullptr);
}

}  // namespace
}  // namespace lw
