// Forward over loopback RPC against the engine's local LayerStack: f32 bit for bit, f16 and
// compressed wire, several steps of one session, truncate, concurrent clients, the HTTP
// control plane.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/unit/server/server_test_util.h"

namespace lw::test {
namespace {

class LoopbackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { store_ = new SynthStore("tiny", "q8_0", 2, 7); }
  static void TearDownTestSuite() {
    delete store_;
    store_ = nullptr;
  }
  void SetUp() override {
    config_ = server_test_config(store_->path());
    manifest_ = manifest_load(store_->path());
  }
  HandshakeArgs good() const {
    HandshakeArgs a;
    a.digest = manifest_.digest.hex();
    return a;
  }

  static SynthStore* store_;
  ServerConfig config_;
  Manifest manifest_;
};
SynthStore* LoopbackTest::store_ = nullptr;

TEST_F(LoopbackTest, F32ForwardEqualsLocalStackBitForBit) {
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  LocalStack local(store_->path(), config_);
  const uint32_t dim = local.dim();

  auto io = kj::setupAsyncIo();
  TestClient client(io, server.ports().rpc);
  ASSERT_FALSE(client.handshake(good()).has_value());
  ASSERT_EQ(client.hidden_size(), dim);
  const size_t s = std::get<size_t>(client.open_session(64));

  // Prefill 9 tokens, then three decode steps, each compared with the engine.
  uint32_t pos = 0;
  for (const uint32_t n : {9u, 1u, 1u, 1u}) {
    const std::vector<float> in = random_hidden(size_t{n} * dim, 100 + pos);
    const std::vector<float> want = local.forward(1, static_cast<int32_t>(pos), in);
    const ForwardReply got = ok(client.forward(s, pos, in));
    ASSERT_EQ(got.hidden.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.hidden.data(), want.data(), want.size() * sizeof(float)))
        << "at position " << pos;
    EXPECT_EQ(got.tensor.dtype, WireDtype::F32);
    pos += n;
    EXPECT_EQ(got.length, pos);
  }
  const MetricsSnapshot m = server.metrics();
  EXPECT_EQ(m.forward_calls, 4u);
  EXPECT_EQ(m.forward_tokens, 12u);
  EXPECT_EQ(m.received.raw_bytes, 12u * dim * 4);
}

TEST_F(LoopbackTest, F16WireWithinToleranceAndCompressedWireExact) {
  // Replies compressed whenever the client accepts it, to exercise shuffle+zstd both ways.
  config_.compression = "shuffle-zstd";
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  LocalStack local(store_->path(), config_);
  const uint32_t dim = local.dim();
  auto io = kj::setupAsyncIo();
  TestClient client(io, server.ports().rpc);
  ASSERT_FALSE(client.handshake(good()).has_value());

  // f16 request and f16 reply: two roundings of relative error <= 2^-11 each, then the
  // layers; the stated tolerance is a normalized error of 1e-2 (seen: ~1e-3).
  const size_t a = std::get<size_t>(client.open_session(64));
  const std::vector<float> in = random_hidden(size_t{8} * dim, 5);
  const std::vector<float> want = local.forward(1, 0, in);
  const ForwardReply f16 =
      ok(client.forward(a, 0, in, WireDtype::F16, CompressionMode::Off, WireDtype::F16));
  EXPECT_EQ(f16.tensor.dtype, WireDtype::F16);
  EXPECT_EQ(f16.tensor.encoding, WireEncoding::ShuffleZstd);
  const double err = rel_error(f16.hidden, want);
  EXPECT_LT(err, 1e-2);
  EXPECT_GT(err, 0.0) << "f16 should not be exact: is the dtype really applied?";

  // f32 with shuffle+zstd in both directions is lossless.
  const size_t b = std::get<size_t>(client.open_session(64));
  const std::vector<float> want2 = local.forward(2, 0, in);
  const ForwardReply z =
      ok(client.forward(b, 0, in, WireDtype::F32, CompressionMode::ShuffleZstd, WireDtype::F32));
  EXPECT_EQ(z.tensor.encoding, WireEncoding::ShuffleZstd);
  ASSERT_EQ(z.hidden.size(), want2.size());
  EXPECT_EQ(0, std::memcmp(z.hidden.data(), want2.data(), want2.size() * sizeof(float)));
  const MetricsSnapshot m = server.metrics();
  EXPECT_EQ(m.received.compressed, 1u);
  EXPECT_EQ(m.sent.compressed, 2u);
  EXPECT_LT(m.sent.wire_bytes, m.sent.raw_bytes);
}

TEST_F(LoopbackTest, TruncateRollsBackAndRecomputesTheSameOutput) {
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  const uint32_t dim = 256;
  auto io = kj::setupAsyncIo();
  TestClient client(io, server.ports().rpc);
  ASSERT_FALSE(client.handshake(good()).has_value());
  ASSERT_EQ(client.hidden_size(), dim);
  const size_t s = std::get<size_t>(client.open_session(64));
  const std::vector<float> p = random_hidden(size_t{4} * dim, 1);
  const std::vector<float> t = random_hidden(size_t{1} * dim, 2);
  ok(client.forward(s, 0, p));
  const std::vector<float> first = ok(client.forward(s, 4, t)).hidden;
  EXPECT_EQ(ok(client.truncate(s, 4)), 4u);
  const ForwardReply again = ok(client.forward(s, 4, t));
  EXPECT_EQ(again.hidden, first);
  EXPECT_EQ(again.length, 5u);
}

TEST_F(LoopbackTest, ConcurrentClientsEachGetTheirOwnExactResults) {
  config_.threads = 1;
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  const int kClients = 4;
  const uint32_t dim = 256;
  const std::vector<uint32_t> steps = {7, 1, 1, 5};
  // Expected outputs first, one local session per client.
  std::vector<std::vector<std::vector<float>>> inputs(kClients), want(kClients);
  {
    LocalStack local(store_->path(), config_);
    for (int c = 0; c < kClients; ++c) {
      uint32_t pos = 0;
      for (const uint32_t n : steps) {
        inputs[c].push_back(random_hidden(size_t{n} * dim, 1000 * c + pos));
        want[c].push_back(local.forward(c + 1, static_cast<int32_t>(pos), inputs[c].back()));
        pos += n;
      }
    }
  }
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> threads;
  const HandshakeArgs args = good();
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto io = kj::setupAsyncIo();
      TestClient client(io, server.ports().rpc);
      if (auto e = client.handshake(args)) {
        failures[c] = "handshake: " + e->description;
        return;
      }
      auto opened = client.open_session(64);
      if (std::holds_alternative<CallError>(opened)) {
        failures[c] = "open: " + std::get<CallError>(opened).description;
        return;
      }
      const size_t s = std::get<size_t>(opened);
      uint32_t pos = 0;
      for (size_t i = 0; i < steps.size(); ++i) {
        auto r = client.forward(s, pos, inputs[c][i]);
        if (std::holds_alternative<CallError>(r)) {
          failures[c] = "forward: " + std::get<CallError>(r).description;
          return;
        }
        if (std::get<ForwardReply>(r).hidden != want[c][i]) {
          failures[c] = "step " + std::to_string(i) + " differs from the local stack";
          return;
        }
        pos += steps[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(failures[c], "") << "client " << c;
  EXPECT_EQ(server.metrics().forward_calls, kClients * steps.size());
}

TEST_F(LoopbackTest, HttpHealthMetricsInfo) {
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  TestClient client(io, server.ports().rpc);
  ASSERT_FALSE(client.handshake(good()).has_value());
  const size_t s = std::get<size_t>(client.open_session(32));
  ok(client.forward(s, 0, random_hidden(3 * 256, 3)));

  httplib::Client http("127.0.0.1", server.ports().http);
  auto health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(nlohmann::json::parse(health->body)["status"], "ok");

  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  const std::string& text = metrics->body;
  EXPECT_NE(text.find("layerwire_forward_latency_seconds_count 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("layerwire_tokens_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("layerwire_raw_bytes_total{direction=\"received\"} 3072\n"),
            std::string::npos);
  EXPECT_NE(text.find("layerwire_sessions 1\n"), std::string::npos);
  EXPECT_NE(text.find("layerwire_kv_used_tokens 16\n"), std::string::npos);  // one block
  EXPECT_NE(text.find("layerwire_kv_budget_tokens 256\n"), std::string::npos);

  auto info = http.Get("/info");
  ASSERT_TRUE(info);
  const auto j = nlohmann::json::parse(info->body);
  EXPECT_EQ(j["digest"], manifest_.digest.hex());
  EXPECT_EQ(j["preset"], manifest_.params.preset);
  EXPECT_EQ(j["layer_begin"], 0);
  EXPECT_EQ(j["layer_end"], 2);
  EXPECT_EQ(j["hidden_size"], 256);
  EXPECT_EQ(j["sessions"]["open"], 1);
  EXPECT_EQ(j["limits"]["max_tokens_per_call"], 16);
  EXPECT_EQ(j["config"]["fragments_dir"], store_->path().string());

  // The same health over RPC, without a handshake.
  auto rpc_health = client.server().healthRequest().send().wait(client.wait_scope());
  EXPECT_EQ(std::string(rpc_health.getHealth().getStatus().cStr()), "ok");
}

TEST_F(LoopbackTest, InfoOverRpcReportsLiveCounters) {
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  TestClient client(io, server.ports().rpc);
  ASSERT_FALSE(client.handshake(good()).has_value());
  const size_t s = std::get<size_t>(client.open_session(64));
  ok(client.forward(s, 0, random_hidden(size_t{16} * 256, 4)));
  ok(client.forward(s, 16, random_hidden(size_t{1} * 256, 4)));
  auto info = client.connection().infoRequest().send().wait(client.wait_scope()).getInfo();
  EXPECT_EQ(info.getOpenSessions(), 1u);
  EXPECT_EQ(info.getKvUsedTokens(), 32u);  // 17 tokens = 2 blocks of 16
  EXPECT_EQ(std::string(info.getDescription().getManifestDigest().cStr()), manifest_.digest.hex());
  EXPECT_EQ(info.getDescription().getLimits().getKvBudgetTokens(), 256u);
}

}  // namespace
}  // namespace lw::test
