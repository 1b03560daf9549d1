// Every bad input of issue 5 against a running server: each returns its stable LW code (and
// the right exception type), and afterwards the server still serves a fresh client.
#include <capnp/rpc.capnp.h>
#include <capnp/serialize-async.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <functional>
#include <random>

#include "tests/unit/server/server_test_util.h"

namespace lw::test {
namespace {

constexpr uint32_t kDim = 256;

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    store_ = new SynthStore("tiny", "q8_0", 2, 11);
    server_ = new InProcessServer(server_test_config(store_->path()));
    ASSERT_TRUE(server_->start()) << server_->error();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete store_;
  }
  void SetUp() override { io_.reset(new kj::AsyncIoContext(kj::setupAsyncIo())); }
  void TearDown() override {
    // The test's client is gone: wait until the server has freed its sessions and KV.
    EXPECT_TRUE(eventually([] {
      const MetricsSnapshot m = server_->metrics();
      return m.sessions_open == 0 && m.kv_used_tokens == 0;
    }));
    // The server keeps serving a fresh client after every bad input.
    TestClient fresh(*io_, server_->ports().rpc);
    ASSERT_FALSE(fresh.handshake(good()).has_value());
    auto opened = fresh.open_session(16);
    ASSERT_TRUE(std::holds_alternative<size_t>(opened)) << std::get<CallError>(opened);
    const ForwardReply r =
        ok(fresh.forward(std::get<size_t>(opened), 0, random_hidden(2 * kDim, 9)));
    EXPECT_EQ(r.length, 2u);
    fresh.disconnect();
    io_.reset();
  }
  static HandshakeArgs good() {
    HandshakeArgs a;
    a.digest = manifest_load(store_->path()).digest.hex();
    return a;
  }
  std::unique_ptr<TestClient> client() {
    auto c = std::make_unique<TestClient>(*io_, server_->ports().rpc);
    EXPECT_FALSE(c->handshake(good()).has_value());
    return c;
  }
  static WireTensor tensor(uint64_t rows, uint64_t cols = kDim,
                           CompressionMode mode = CompressionMode::Off) {
    const std::vector<float> v = random_hidden(rows * cols, 3);
    EncodeOptions o;
    o.mode = mode;
    const uint64_t shape[2] = {rows, cols};
    return encode_tensor(v.data(), shape, o);
  }
  void expect_error(const CallError& e, const std::string& code, const std::string& mentions = "",
                    kj::Exception::Type type = kj::Exception::Type::FAILED) {
    EXPECT_EQ(e.code, code) << e;
    EXPECT_EQ(e.type, type) << e;
    if (!mentions.empty()) {
      EXPECT_NE(e.description.find(mentions), std::string::npos) << e;
    }
  }

  static SynthStore* store_;
  static InProcessServer* server_;
  std::unique_ptr<kj::AsyncIoContext> io_;  // std:: so the fixture destructor stays noexcept
};
SynthStore* BadInputTest::store_ = nullptr;
InProcessServer* BadInputTest::server_ = nullptr;

// ---- the request tensor: a table of named corruptions -------------------------------

struct TensorCase {
  const char* name;
  std::function<WireTensor()> make;
  const char* code;
  const char* mentions;
};

TEST_F(BadInputTest, CorruptRequestTensors) {
  const std::vector<TensorCase> cases = {
      {"unknown dtype",
       [] {
         WireTensor t = tensor(1);
         t.dtype = static_cast<WireDtype>(7);
         return t;
       },
       "LW-WIRE-001", "7"},
      {"unknown encoding",
       [] {
         WireTensor t = tensor(1);
         t.encoding = static_cast<WireEncoding>(9);
         return t;
       },
       "LW-WIRE-005", "9"},
      {"rank 3",
       [] {
         WireTensor t = tensor(2);
         t.shape = {1, 2, kDim};
         return t;
       },
       "LW-WIRE-002", ""},
      {"shape does not match rawSize",
       [] {
         WireTensor t = tensor(2);
         t.shape = {3, kDim};
         return t;
       },
       "LW-WIRE-002", ""},
      {"wrong hidden size", [] { return tensor(2, 128); }, "LW-WIRE-002", "256"},
      {"more tokens than max_tokens_per_call", [] { return tensor(17); }, "LW-WIRE-006", "16"},
      {"checksum mismatch",
       [] {
         WireTensor t = tensor(2);
         t.xxh3_64 ^= 1;
         return t;
       },
       "LW-WIRE-003", ""},
      {"flipped data byte",
       [] {
         WireTensor t = tensor(2);
         t.data[100] ^= 0x10;
         return t;
       },
       "LW-WIRE-003", ""},
      {"raw data one byte short",
       [] {
         WireTensor t = tensor(2);
         t.data.pop_back();
         return t;
       },
       "LW-WIRE-004", ""},
      {"truncated zstd frame",
       [] {
         WireTensor t = tensor(4, kDim, CompressionMode::Zstd);
         t.data.resize(t.data.size() / 2);
         return t;
       },
       "LW-WIRE-004", ""},
      {"zstd data that is not a frame",
       [] {
         WireTensor t = tensor(4, kDim, CompressionMode::ShuffleZstd);
         for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<uint8_t>(i * 31 + 7);
         return t;
       },
       "LW-WIRE-004", ""},
  };
  auto c = client();
  const size_t s = std::get<size_t>(c->open_session(64));
  for (const TensorCase& tc : cases) {
    SCOPED_TRACE(tc.name);
    expect_error(failed(c->forward_tensor(s, 0, tc.make())), tc.code, tc.mentions);
  }
  // The same session is unharmed: nothing was appended by the failed calls.
  EXPECT_EQ(ok(c->forward(s, 0, random_hidden(kDim, 1))).length, 1u);
  const MetricsSnapshot m = server_->metrics();
  EXPECT_GE(m.errors.at("LW-WIRE-003"), 2u);
  EXPECT_GE(m.errors.at("LW-WIRE-004"), 3u);
}

// Bit-flip fuzzing of the request tensor: random single-bit flips in the data, the
// checksum, rawSize or a shape entry, and random enum values. Every call must either fail
// with a wire code (never a transport error, never a crash) or, when the flip is a no-op for
// the decoder, succeed with the session's length advanced.
TEST_F(BadInputTest, BitFlippedRequestTensorsAreAlwaysTypedErrors) {
  auto c = client();
  const size_t s = std::get<size_t>(c->open_session(256));
  std::mt19937 rng(1234);
  uint32_t length = 0;
  int failures = 0;
  for (int i = 0; i < 150; ++i) {
    const CompressionMode mode = i % 3 == 0   ? CompressionMode::Off
                                 : i % 3 == 1 ? CompressionMode::Zstd
                                              : CompressionMode::ShuffleZstd;
    WireTensor t = tensor(2, kDim, mode);
    switch (rng() % 5) {
      case 0:
      case 1: {
        const size_t bit = rng() % (t.data.size() * 8);
        t.data[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        break;
      }
      case 2:
        t.xxh3_64 ^= uint64_t{1} << (rng() % 64);
        break;
      case 3:
        t.raw_size ^= uint64_t{1} << (rng() % 64);
        break;
      case 4:
        t.shape[rng() % 2] ^= uint64_t{1} << (rng() % 64);
        break;
    }
    auto r = c->forward_tensor(s, length, t);
    if (const CallError* e = std::get_if<CallError>(&r)) {
      EXPECT_EQ(e->code.rfind("LW-WIRE-00", 0), 0u) << "iteration " << i << ": " << *e;
      ++failures;
    } else {
      length += 2;
      EXPECT_EQ(std::get<ForwardReply>(r).length, length);
    }
  }
  EXPECT_GT(failures, 140);
}

TEST_F(BadInputTest, BadReplyDtype) {
  auto c = client();
  const size_t s = std::get<size_t>(c->open_session(64));
  expect_error(failed(c->forward_tensor(s, 0, tensor(1), static_cast<WireDtype>(5))), "LW-WIRE-001",
               "replyDtype");
}

// ---- positions and sessions -----------------------------------------------------------

TEST_F(BadInputTest, PositionsPastTheSessionsMaxTokens) {
  auto c = client();
  const size_t s = std::get<size_t>(c->open_session(20));
  ok(c->forward(s, 0, random_hidden(16 * kDim, 1)));
  expect_error(failed(c->forward(s, 16, random_hidden(5 * kDim, 1))), "LW-SRV-003",
               "maxTokens = 20");
  // Exactly up to the limit is fine.
  EXPECT_EQ(ok(c->forward(s, 16, random_hidden(4 * kDim, 1))).length, 20u);
}

TEST_F(BadInputTest, SessionLargerThanTheKvBudget) {
  auto c = client();
  expect_error(failed(c->open_session(257)), "LW-SRV-003", "kv_budget_tokens = 256");
}

TEST_F(BadInputTest, KvBudgetExhaustedIsOverloaded) {
  auto c = client();
  const size_t a = std::get<size_t>(c->open_session(256));
  const size_t b = std::get<size_t>(c->open_session(256));
  for (uint32_t pos = 0; pos < 240; pos += 16)
    ok(c->forward(a, pos, random_hidden(16 * kDim, pos)));
  ok(c->forward(b, 0, random_hidden(16 * kDim, 1)));  // the last free block
  expect_error(failed(c->forward(b, 16, random_hidden(1 * kDim, 1))), "LW-KV-001", "",
               kj::Exception::Type::OVERLOADED);
  expect_error(failed(c->open_session(16)), "LW-KV-001", "full", kj::Exception::Type::OVERLOADED);
  // Freeing a session makes room again.
  ASSERT_FALSE(c->close_session(a).has_value());
  EXPECT_EQ(ok(c->forward(b, 16, random_hidden(1 * kDim, 1))).length, 17u);
}

TEST_F(BadInputTest, PositionsNotContiguous) {
  auto c = client();
  const size_t s = std::get<size_t>(c->open_session(64));
  expect_error(failed(c->forward(s, 5, random_hidden(kDim, 1))), "LW-ENG-003");
  ok(c->forward(s, 0, random_hidden(3 * kDim, 1)));
  expect_error(failed(c->forward(s, 2, random_hidden(kDim, 1))), "LW-ENG-003");
  expect_error(failed(c->truncate(s, 9)), "LW-ENG-003");
}

TEST_F(BadInputTest, ClosedAndUnknownSessions) {
  auto c = client();
  const size_t s = std::get<size_t>(c->open_session(64));
  ASSERT_FALSE(c->close_session(s).has_value());
  expect_error(failed(c->forward(s, 0, random_hidden(kDim, 1))), "LW-ENG-002",
               "closed by the client");
  expect_error(failed(c->close_session(s)), "LW-ENG-002");
  expect_error(failed(c->truncate(s, 0)), "LW-ENG-002");
  // A session whose connection was dropped is gone too.
  const size_t t = std::get<size_t>(c->open_session(64));
  c->drop_connection();
  expect_error(failed(c->forward(t, 0, random_hidden(kDim, 1))), "LW-ENG-002", "connection");
}

TEST_F(BadInputTest, TooManySessionsIsOverloaded) {
  auto c = client();
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(std::holds_alternative<size_t>(c->open_session(16)));
  expect_error(failed(c->open_session(16)), "LW-SRV-001", "max_sessions is 8",
               kj::Exception::Type::OVERLOADED);
}

// ---- handshake ----------------------------------------------------------------------

TEST_F(BadInputTest, HandshakeMismatches) {
  TestClient c(*io_, server_->ports().rpc);
  HandshakeArgs a = good();
  a.protocol_version = schema::PROTOCOL_VERSION + 1;
  a.digest = "0123";  // not looked at: the version is checked first
  expect_error(failed(c.handshake(a)), "LW-WIRE-007", "client speaks 2, server speaks 1");

  a = good();
  a.digest = std::string(32, 'f');
  expect_error(failed(c.handshake(a)), "LW-SRV-004", std::string(32, 'f'));

  a = good();
  a.architecture = "mistral-7b";
  expect_error(failed(c.handshake(a)), "LW-SRV-005", "mistral-7b");

  // The same connection may retry with the right values.
  a = good();
  a.architecture = manifest_load(store_->path()).params.preset;
  EXPECT_FALSE(c.handshake(a).has_value());
}

// ---- connection-level: the framing itself -------------------------------------------

TEST_F(BadInputTest, GarbageBytesOnTheRpcPort) {
  auto stream = io_->provider->getNetwork()
                    .parseAddress("127.0.0.1", server_->ports().rpc)
                    .wait(io_->waitScope)
                    ->connect()
                    .wait(io_->waitScope);
  const std::string http = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
  stream->write(http.data(), http.size()).wait(io_->waitScope);
  // The server answers with an RPC Abort naming the code, then closes the connection.
  auto reply = capnp::readMessage(*stream).wait(io_->waitScope);
  auto message = reply->getRoot<capnp::rpc::Message>();
  ASSERT_TRUE(message.isAbort());
  const std::string reason = message.getAbort().getReason().cStr();
  EXPECT_EQ(reason.rfind("LW-SRV-009: ", 0), 0u) << reason;
  EXPECT_TRUE(eventually([&] { return server_->metrics().connections_open <= 1; }));
  EXPECT_EQ(server_->metrics().errors.at("LW-SRV-009"), 1u);
}

TEST_F(BadInputTest, OversizedMessage) {
  auto c = client();
  const size_t s = std::get<size_t>(c->open_session(64));
  // 64 rows of f32 = 64 KiB: over max_message_bytes (32 KiB) before any field is read. The
  // server aborts that connection with the code, so the client sees it as a disconnect.
  expect_error(failed(c->forward_tensor(s, 0, tensor(64))), "LW-SRV-006",
               "max_message_bytes = 32768", kj::Exception::Type::DISCONNECTED);
}

// ---- auth -----------------------------------------------------------------------------

TEST(ServerAuthTest, MissingAndWrongTokenAreRefusedAndNeverEchoed) {
  SynthStore store("tiny", "q8_0", 1, 3);
  TempDir dir;
  const std::string token = "s3cret-token-value";
  write_text_file(dir / "token", token + "\n");
  ::chmod((dir / "token").c_str(), 0600);
  ServerConfig config = server_test_config(store.path());
  config.auth_token_file = (dir / "token").string();
  InProcessServer server(config);
  ASSERT_TRUE(server.start()) << server.error();

  auto io = kj::setupAsyncIo();
  TestClient c(io, server.ports().rpc);
  HandshakeArgs a;
  a.digest = manifest_load(store.path()).digest.hex();
  CallError e = failed(c.handshake(a));
  EXPECT_EQ(e.code, "LW-AUTH-001") << e;
  a.token = "s3cret-token-valuX";
  e = failed(c.handshake(a));
  EXPECT_EQ(e.code, "LW-AUTH-002") << e;
  EXPECT_EQ(e.description.find("s3cret"), std::string::npos) << e;
  a.token = token;
  EXPECT_FALSE(c.handshake(a).has_value());
  const size_t s = std::get<size_t>(c.open_session(8));
  EXPECT_EQ(ok(c.forward(s, 0, random_hidden(kDim, 1))).length, 1u);
}

TEST(ServerAuthTest, TokenFileReadableByOthersRefusesToStart) {
  SynthStore store("tiny", "q8_0", 1, 3);
  TempDir dir;
  write_text_file(dir / "token", "abc\n");
  ::chmod((dir / "token").c_str(), 0644);
  ServerConfig config = server_test_config(store.path());
  config.auth_token_file = (dir / "token").string();
  InProcessServer server(config);
  EXPECT_FALSE(server.start());
  server.join();
  EXPECT_EQ(server.error().rfind("LW-AUTH-003", 0), 0u) << server.error();
  EXPECT_NE(server.error().find("644"), std::string::npos) << server.error();
}

}  // namespace
}  // namespace lw::test
