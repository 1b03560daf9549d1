// The server's life: startup verification of exactly its layers (refusing to start, naming
// file and tensor), sessions freed on disconnect, idle TTL expiry, the drain on stop, and
// refusing new calls while draining.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/unit/server/server_test_util.h"

namespace lw::test {
namespace {

constexpr uint32_t kDim = 256;

class LifecycleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { store_ = new SynthStore("tiny", "q8_0", 4, 21); }
  static void TearDownTestSuite() {
    delete store_;
    store_ = nullptr;
  }
  void SetUp() override { config_ = server_test_config(store_->path()); }
  static HandshakeArgs good() {
    HandshakeArgs a;
    a.digest = manifest_load(store_->path()).digest.hex();
    return a;
  }
  static SynthStore* store_;
  ServerConfig config_;
};
SynthStore* LifecycleTest::store_ = nullptr;

// Flips one byte inside tensor `tensor_index` of layer `layer`'s fragment, in a copy of the
// store; returns the copy and names the file and tensor.
struct DamagedStore {
  TempDir dir;
  std::string file;
  std::string tensor;
};
void damage(const std::filesystem::path& store, int layer, DamagedStore* out) {
  std::filesystem::copy(store, out->dir / "store", std::filesystem::copy_options::recursive);
  const Manifest m = manifest_load(store);
  const ManifestFragment* f = m.layer_fragment(layer);
  ASSERT_NE(f, nullptr);
  const ManifestTensor& t = f->tensors.back();
  out->file = f->file;
  out->tensor = t.name;
  std::fstream io(out->dir / "store" / f->file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(t.offset + t.size / 2));
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  io.seekp(static_cast<std::streamoff>(t.offset + t.size / 2));
  io.write(&c, 1);
}

TEST_F(LifecycleTest, RefusesToStartWhenItsLayersAreCorruptNamingFileAndTensor) {
  DamagedStore d;
  damage(store_->path(), 2, &d);
  ServerConfig config = config_;
  config.fragments_dir = (d.dir / "store").string();
  config.layers = "2-3";
  InProcessServer server(config);
  EXPECT_FALSE(server.start());
  server.join();
  EXPECT_EQ(server.error().rfind("LW-SRV-008: ", 0), 0u) << server.error();
  EXPECT_NE(server.error().find(d.file), std::string::npos) << server.error();
  EXPECT_NE(server.error().find(d.tensor), std::string::npos) << server.error();
  EXPECT_EQ(server.metrics().phase, ServerPhase::Failed);
}

TEST_F(LifecycleTest, VerifiesOnlyItsOwnLayers) {
  // Layer 2 is damaged and the head files are missing: a server of layers 0-1 does not care.
  DamagedStore d;
  damage(store_->path(), 2, &d);
  std::filesystem::remove(d.dir / "store" / "embedding.lwf");
  ServerConfig config = config_;
  config.fragments_dir = (d.dir / "store").string();
  config.layers = "0-1";
  InProcessServer server(config);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  TestClient c(io, server.ports().rpc);
  ASSERT_FALSE(c.handshake(good()).has_value());
  const size_t s = std::get<size_t>(c.open_session(8));
  EXPECT_EQ(ok(c.forward(s, 0, random_hidden(kDim, 1))).length, 1u);
}

TEST_F(LifecycleTest, ServesALayerRangeLikeTheEngine) {
  ServerConfig config = config_;
  config.layers = "1-2";
  InProcessServer server(config);
  ASSERT_TRUE(server.start()) << server.error();
  FragmentStore store = FragmentStore::open(store_->path());
  auto backend = make_backend("cpu", 0, config.threads);
  LayerStackOptions o;
  o.kv.budget_tokens = 256;
  LayerStack stack(store, LayerRange{1, 3}, *backend, o);
  stack.kv().open(1);
  const std::vector<float> in = random_hidden(5 * kDim, 8);
  std::vector<float> want(in.size());
  const BatchEntry entry{1, 5, 0};
  stack.forward(std::span<const BatchEntry>(&entry, 1), in, want);

  auto io = kj::setupAsyncIo();
  TestClient c(io, server.ports().rpc);
  ASSERT_FALSE(c.handshake(good()).has_value());
  const size_t s = std::get<size_t>(c.open_session(8));
  EXPECT_EQ(ok(c.forward(s, 0, in)).hidden, want);
  EXPECT_EQ(server.metrics().model.layer_begin, 1u);
  EXPECT_EQ(server.metrics().model.layer_end, 3u);
}

TEST_F(LifecycleTest, DisconnectFreesSessionsAndTheirKv) {
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  {
    TestClient c(io, server.ports().rpc);
    ASSERT_FALSE(c.handshake(good()).has_value());
    for (int i = 0; i < 3; ++i) {
      const size_t s = std::get<size_t>(c.open_session(64));
      ok(c.forward(s, 0, random_hidden(10 * kDim, i)));
    }
    EXPECT_EQ(server.metrics().sessions_open, 3u);
    EXPECT_EQ(server.metrics().kv_used_tokens, 48u);
  }  // the client disconnects without closing anything
  EXPECT_TRUE(eventually([&] {
    const MetricsSnapshot m = server.metrics();
    return m.sessions_open == 0 && m.kv_used_tokens == 0;
  }));
  EXPECT_EQ(server.metrics().sessions_freed_on_disconnect, 3u);
  EXPECT_EQ(server.metrics().connections_open, 0u);
}

TEST_F(LifecycleTest, DroppingASessionCapabilityClosesIt) {
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  TestClient c(io, server.ports().rpc);
  ASSERT_FALSE(c.handshake(good()).has_value());
  const size_t s = std::get<size_t>(c.open_session(64));
  ok(c.forward(s, 0, random_hidden(3 * kDim, 1)));
  c.drop_session(s);
  // Any later call flushes the release to the server.
  c.connection().infoRequest().send().wait(c.wait_scope());
  EXPECT_TRUE(eventually([&] { return server.metrics().kv_used_tokens == 0; }));
  EXPECT_EQ(server.metrics().sessions_open, 0u);
}

TEST_F(LifecycleTest, IdleSessionsExpireAfterTheTtl) {
  config_.session_ttl_seconds = 1;
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  TestClient c(io, server.ports().rpc);
  ASSERT_FALSE(c.handshake(good()).has_value());
  const size_t idle = std::get<size_t>(c.open_session(64));
  ok(c.forward(idle, 0, random_hidden(2 * kDim, 1)));
  EXPECT_TRUE(
      eventually([&] { return server.metrics().sessions_expired == 1; }, std::chrono::seconds(5)));
  const CallError e = failed(c.forward(idle, 2, random_hidden(kDim, 1)));
  EXPECT_EQ(e.code, "LW-ENG-002") << e;
  EXPECT_NE(e.description.find("expired"), std::string::npos) << e;
  EXPECT_EQ(server.metrics().kv_used_tokens, 0u);
  EXPECT_EQ(server.metrics().sessions_open, 0u);
}

TEST_F(LifecycleTest, StopDrainsCallsInFlightThenRefusesNewOnes) {
  config_.max_tokens_per_call = 128;
  config_.max_message_bytes = 1 << 20;
  config_.kv_budget_tokens = 2048;
  InProcessServer server(config_);
  ASSERT_TRUE(server.start()) << server.error();
  auto io = kj::setupAsyncIo();
  TestClient c(io, server.ports().rpc);
  ASSERT_FALSE(c.handshake(good()).has_value());
  const size_t s = std::get<size_t>(c.open_session(2048));

  // Pipeline 8 prefill-size calls without waiting, then stop the server while they run.
  std::vector<kj::Promise<capnp::Response<schema::Session::ForwardResults>>> pending;
  EncodeOptions o;
  for (uint32_t i = 0; i < 8; ++i) {
    const std::vector<float> in = random_hidden(128 * kDim, i);
    const uint64_t shape[2] = {128, kDim};
    auto request = c.session(s).forwardRequest();
    request.setStartPos(i * 128);
    write_tensor(request.initHidden(), encode_tensor(in.data(), shape, o));
    pending.push_back(request.send());
  }
  // The client's loop must run to send them.
  ASSERT_TRUE(eventually([&] {
    c.wait_scope().poll();
    return server.metrics().calls_in_flight >= 4;
  }));
  std::thread stopper([&] { server.app().request_stop(); });
  ASSERT_TRUE(eventually([&] { return server.metrics().phase == ServerPhase::Draining; }));
  EXPECT_GE(server.metrics().calls_in_flight, 1u) << "nothing left to drain: calls too fast?";
  // A new call during the drain is refused (overloaded), the ones in flight complete.
  const CallError refused = failed(c.open_session(8));
  EXPECT_EQ(refused.code, "LW-SRV-002") << refused;
  EXPECT_EQ(refused.type, kj::Exception::Type::OVERLOADED);
  uint32_t completed = 0;
  for (auto& p : pending) {
    try {
      auto r = p.wait(c.wait_scope());
      completed += 1;
      EXPECT_EQ(r.getLength(), completed * 128);
    } catch (const kj::Exception& e) {
      ADD_FAILURE() << "a call in flight failed during the drain: " << e.getDescription().cStr();
    }
  }
  EXPECT_EQ(completed, 8u);
  stopper.join();
  server.stop();  // run() returns
  EXPECT_EQ(server.error(), "");
  // The port is closed now.
  EXPECT_ANY_THROW(io.provider->getNetwork()
                       .parseAddress("127.0.0.1", server.ports().rpc)
                       .wait(io.waitScope)
                       ->connect()
                       .wait(io.waitScope));
}

TEST_F(LifecycleTest, PortFileIsWrittenWhenReadyAndRemovedAtExit) {
  TempDir dir;
  ServerAppOptions options;
  options.port_file = (dir / "ports.json").string();
  InProcessServer server(config_, options);
  ASSERT_TRUE(server.start()) << server.error();
  const std::string text = read_text_file(dir / "ports.json");
  EXPECT_NE(text.find("\"rpc_port\":" + std::to_string(server.ports().rpc)), std::string::npos)
      << text;
  EXPECT_NE(text.find("\"http_port\":" + std::to_string(server.ports().http)), std::string::npos)
      << text;
  server.stop();
  EXPECT_FALSE(std::filesystem::exists(dir / "ports.json"));
}

TEST_F(LifecycleTest, ListenFailureIsTyped) {
  InProcessServer first(config_);
  ASSERT_TRUE(first.start()) << first.error();
  ServerConfig config = config_;
  config.rpc_listen = "127.0.0.1:" + std::to_string(first.ports().rpc);
  InProcessServer second(config);
  EXPECT_FALSE(second.start());
  second.join();
  EXPECT_EQ(second.error().rfind("LW-SRV-007: ", 0), 0u) << second.error();
}

}  // namespace
}  // namespace lw::test
