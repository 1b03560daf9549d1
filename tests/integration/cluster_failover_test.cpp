// Failover: a layer server is SIGKILLed in the middle of a greedy generation; its replica
// takes the range over, its KV cache is rebuilt by replaying the session's tokens, and the
// generated tokens equal an uninterrupted run. Without a replica the error names the range
// and the server.
#include <gtest/gtest.h>

#include "client/remote_executor.h"
#include "common/error.h"
#include "tests/integration/cluster_test_util.h"

namespace lw {
namespace {

const std::vector<int32_t> kPrompt = {1, 15, 27, 300, 511, 2, 99};

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0;
  p.repeat_penalty = 1;
  return p;
}

GenerateOptions options(uint32_t n) {
  GenerateOptions o;
  o.max_tokens = n;
  o.stop_at_eos = false;
  return o;
}

class ClusterFailoverTest : public testing::Test {
 protected:
  void SetUp() override {
    store_ = test::make_tiny_store(dir_, "store");
    a_ = start("a", "0-1");
    a2_ = start("a2", "0-1");
    b_ = start("b", "2-3");
    b2_ = start("b2", "2-3");
  }
  std::unique_ptr<test::LayerServerProcess> start(const std::string& name,
                                                  const std::string& layers) {
    auto p = std::make_unique<test::LayerServerProcess>(
        dir_, name,
        std::vector<std::string>{"--fragments-dir", store_.string(), "--layers", layers});
    EXPECT_TRUE(p->running());
    return p;
  }
  ClientConfig config(bool replicas) {
    ServerGroup ga{test::spec_of(*a_, "0-1"), {}};
    ServerGroup gb{test::spec_of(*b_, "2-3"), {}};
    if (replicas) {
      ga.replicas.push_back(test::spec_of(*a2_));
      gb.replicas.push_back(test::spec_of(*b2_));
    }
    return test::cluster_config(store_, {ga, gb});
  }
  // The reference: an uninterrupted greedy run on the primaries.
  std::vector<int32_t> reference(uint32_t n) {
    RemoteLayerExecutor ex(config(false));
    const SessionId s = ex.open_session();
    return ex.generate_tokens(s, kPrompt, greedy(), options(n)).tokens;
  }
  // Generates n tokens, SIGKILLing `victim` just before the `at`-th forward call to it.
  GenerateResult run_with_kill(test::LayerServerProcess& victim, int at, uint32_t n,
                               bool replicas) {
    RemoteLayerExecutor ex(config(replicas));
    int calls = 0;
    ex.before_hop_call = [&](size_t, const std::string& server) {
      if (server == victim.name() && ++calls == at) victim.stop(SIGKILL);
    };
    const SessionId s = ex.open_session();
    GenerateResult r = ex.generate_tokens(s, kPrompt, greedy(), options(n));
    EXPECT_FALSE(victim.running());
    return r;
  }

  test::TempDir dir_;
  std::filesystem::path store_;
  std::unique_ptr<test::LayerServerProcess> a_, a2_, b_, b2_;
};

TEST_F(ClusterFailoverTest, KillLastHopMidGenerationReplicaTakesOverSameTokens) {
  const std::vector<int32_t> want = reference(24);
  ASSERT_EQ(want.size(), 24u);
  // Call 1 is the prefill, so the kill lands on the 9th decode step: the replica must
  // rebuild 7 + 8 tokens through a temporary session on hop 0, then carry on.
  const GenerateResult r = run_with_kill(*b_, 10, 24, true);
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(r.stats.failovers, 1u);
  EXPECT_EQ(r.stats.replayed_tokens, kPrompt.size() + 8);
  bool replica_used = false;
  for (const ServerStats& s : r.stats.servers) {
    if (s.name == "b2") replica_used = s.calls > 0;
    if (s.name == "b") {
      EXPECT_EQ(s.failures, 1u);
    }
  }
  EXPECT_TRUE(replica_used);
}

TEST_F(ClusterFailoverTest, KillFirstHopMidGenerationReplicaTakesOverSameTokens) {
  const std::vector<int32_t> want = reference(16);
  const GenerateResult r = run_with_kill(*a_, 5, 16, true);
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(r.stats.failovers, 1u);
  EXPECT_EQ(r.stats.replayed_tokens, kPrompt.size() + 3);
}

TEST_F(ClusterFailoverTest, ServerThatStopsAnsweringTimesOutAndReplicaTakesOver) {
  const std::vector<int32_t> want = reference(12);
  ClientConfig c = config(true);
  c.call_timeout_ms = 1500;
  RemoteLayerExecutor ex(c);
  int calls = 0;
  ex.before_hop_call = [&](size_t, const std::string& server) {
    if (server == "b" && ++calls == 6) b_->signal(SIGSTOP);  // alive but silent
  };
  const SessionId s = ex.open_session();
  const GenerateResult r = ex.generate_tokens(s, kPrompt, greedy(), options(12));
  b_->stop(SIGKILL);
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(r.stats.failovers, 1u);
  for (const ServerStats& st : r.stats.servers) {
    if (st.name == "b") {
      EXPECT_EQ(st.failures, 1u);
    }
    if (st.name == "b2") {
      EXPECT_GT(st.calls, 0u);
    }
  }
}

TEST_F(ClusterFailoverTest, NoReplicaGivesAClearError) {
  RemoteLayerExecutor ex(config(false));
  int calls = 0;
  ex.before_hop_call = [&](size_t, const std::string& server) {
    if (server == "b" && ++calls == 4) b_->stop(SIGKILL);
  };
  const SessionId s = ex.open_session();
  try {
    ex.generate_tokens(s, kPrompt, greedy(), options(16));
    FAIL() << "generation survived the loss of its only server for layers 2-3";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kClientFailover) << e.what();
    const std::string m = e.what();
    EXPECT_NE(m.find("layers 2-3"), std::string::npos) << m;
    EXPECT_NE(m.find("server b (" + b_->rpc() + ")"), std::string::npos) << m;
    EXPECT_NE(m.find("no replica"), std::string::npos) << m;
  }
  // The session is unusable afterwards, and says so.
  EXPECT_THROW(ex.forward(s, kPrompt, false), Error);
}

}  // namespace
}  // namespace lw
