#include "schema/rpc_error.h"

#include <capnp/rpc-twoparty.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <string>
#include <vector>

#include "schema/wire_convert.h"

namespace lw {
namespace {

TEST(RpcErrorTest, ErrorToExceptionAndBack) {
  const Error wire(ErrorCode::kWireChecksum, "tensor xxh3: message says 0x1, computed 0x2");
  const kj::Exception e = to_rpc_exception(wire);
  EXPECT_EQ(e.getType(), kj::Exception::Type::FAILED);
  EXPECT_EQ(std::string(e.getDescription().cStr()), wire.what());
  EXPECT_EQ(to_rpc_exception(Error(ErrorCode::kKvExhausted, "x")).getType(),
            kj::Exception::Type::OVERLOADED);

  auto back = error_from_rpc_exception(e);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->code(), ErrorCode::kWireChecksum);
  EXPECT_EQ(back->message(), wire.message());

  // As it arrives on the calling side of a Cap'n Proto connection.
  const kj::Exception remote(kj::Exception::Type::FAILED, "(remote)", 0,
                             kj::str("remote exception: LW-WIRE-004: tensor data: bad"));
  back = error_from_rpc_exception(remote);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->code(), ErrorCode::kWireDecode);
  EXPECT_EQ(back->message(), "tensor data: bad");

  for (const char* text : {"remote exception: Peer disconnected.", "LW-NOPE-999: unknown code",
                           "xLW-WIRE-004: not at a word start", "LW-WIRE-004 missing colon"}) {
    EXPECT_FALSE(error_from_rpc_exception(
                     kj::Exception(kj::Exception::Type::FAILED, "f", 0, kj::heapString(text)))
                     .has_value())
        << text;
  }
}

TEST(RpcErrorTest, ProtocolVersionCheckNamesBothVersions) {
  EXPECT_NO_THROW(check_protocol_version(1, 1));
  try {
    check_protocol_version(2, 1);
    ADD_FAILURE() << "versions 2 and 1 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kWireProtocolVersion);
    EXPECT_NE(e.message().find("client speaks 2, server speaks 1"), std::string::npos) << e.what();
  }
}

// ---- a loopback Cap'n Proto connection with a stand-in server --------------------------
// The real layer_server lives in server/; this fake only exercises the schema, the tensor
// conversion and the error convention end to end over a real two-party RPC connection.

class FakeSession final : public schema::Session::Server {
 protected:
  kj::Promise<void> forward(ForwardContext context) override {
    try {
      auto params = context.getParams();
      DecodeLimits limits;
      limits.expected_last_dim = 64;
      limits.max_rows = 4;
      const WireTensorView in = view_tensor(params.getHidden(), limits);
      std::vector<float> x = codec_.decode(in, limits);
      for (float& v : x) v *= 2.0f;
      EncodeOptions opt;
      opt.dtype = static_cast<WireDtype>(static_cast<uint16_t>(params.getReplyDtype()));
      const WireTensor out = codec_.encode(x.data(), in.shape, opt);
      auto results = context.getResults();
      write_tensor(results.initHidden(), out);
      results.setLength(params.getStartPos() + static_cast<uint32_t>(in.shape[0]));
    } catch (const Error& e) {
      return to_rpc_exception(e);
    }
    return kj::READY_NOW;
  }

 private:
  WireCodec codec_;
};

class FakeConnection final : public schema::Connection::Server {
 protected:
  kj::Promise<void> openSession(OpenSessionContext context) override {
    const uint32_t want = context.getParams().getMaxTokens();
    if (want > 100) {
      return to_rpc_exception(
          Error(ErrorCode::kKvExhausted, "openSession maxTokens " + std::to_string(want) +
                                             " exceeds the free KV budget of 100 tokens"));
    }
    context.getResults().setSession(kj::heap<FakeSession>());
    return kj::READY_NOW;
  }
};

class FakeLayerServer final : public schema::LayerServer::Server {
 protected:
  kj::Promise<void> handshake(HandshakeContext context) override {
    try {
      check_protocol_version(context.getParams().getRequest().getProtocolVersion(),
                             schema::PROTOCOL_VERSION);
    } catch (const Error& e) {
      return to_rpc_exception(e);
    }
    auto results = context.getResults();
    results.initResponse().setProtocolVersion(schema::PROTOCOL_VERSION);
    results.setConnection(kj::heap<FakeConnection>());
    return kj::READY_NOW;
  }
};

// Runs `call` and returns the lw::Error carried by the exception it throws.
template <typename Fn>
Error expect_rpc_error(Fn&& call, kj::Exception::Type type) {
  try {
    call();
  } catch (const kj::Exception& e) {
    EXPECT_EQ(e.getType(), type) << e.getDescription().cStr();
    auto error = error_from_rpc_exception(e);
    if (error) return *error;
    ADD_FAILURE() << "no LW code in: " << e.getDescription().cStr();
    return Error(ErrorCode::kInternal, "");
  }
  ADD_FAILURE() << "the call succeeded";
  return Error(ErrorCode::kInternal, "");
}

TEST(RpcErrorTest, LoopbackRpcCarriesTensorsAndTypedErrors) {
  auto io = kj::setupAsyncIo();
  auto pipe = io.provider->newTwoWayPipe();
  capnp::TwoPartyServer server(kj::heap<FakeLayerServer>());
  server.accept(kj::mv(pipe.ends[1]));
  capnp::TwoPartyClient client(*pipe.ends[0]);
  auto bootstrap = client.bootstrap().castAs<schema::LayerServer>();

  // A newer client is refused, naming both versions.
  Error refused = expect_rpc_error(
      [&] {
        auto req = bootstrap.handshakeRequest();
        req.initRequest().setProtocolVersion(schema::PROTOCOL_VERSION + 1);
        req.send().wait(io.waitScope);
      },
      kj::Exception::Type::FAILED);
  EXPECT_EQ(refused.code(), ErrorCode::kWireProtocolVersion);
  EXPECT_NE(refused.message().find("client speaks 2, server speaks 1"), std::string::npos)
      << refused.what();

  auto hs = bootstrap.handshakeRequest();
  hs.initRequest().setProtocolVersion(schema::PROTOCOL_VERSION);
  auto hs_result = hs.send().wait(io.waitScope);
  EXPECT_EQ(hs_result.getResponse().getProtocolVersion(), schema::PROTOCOL_VERSION);
  auto connection = hs_result.getConnection();

  Error overloaded = expect_rpc_error(
      [&] {
        auto req = connection.openSessionRequest();
        req.setMaxTokens(200);
        req.send().wait(io.waitScope);
      },
      kj::Exception::Type::OVERLOADED);
  EXPECT_EQ(overloaded.code(), ErrorCode::kKvExhausted);
  EXPECT_NE(overloaded.message().find("200"), std::string::npos);

  auto open = connection.openSessionRequest();
  open.setMaxTokens(64);
  auto session = open.send().wait(io.waitScope).getSession();

  std::vector<float> x(2 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.5f - 3.0f;
  WireCodec codec;
  EncodeOptions opt;
  opt.dtype = WireDtype::F16;
  opt.mode = CompressionMode::ShuffleZstd;
  const WireTensor sent = codec.encode(x.data(), std::vector<uint64_t>{2, 64}, opt);

  auto fwd = session.forwardRequest();
  fwd.setStartPos(0);
  fwd.setReplyDtype(schema::Dtype::F32);
  write_tensor(fwd.initHidden(), sent);
  auto reply = fwd.send().wait(io.waitScope);
  EXPECT_EQ(reply.getLength(), 2u);
  const std::vector<float> y = codec.decode(view_tensor(reply.getHidden(), {}), {});
  ASSERT_EQ(y.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], 2.0f * x[i]) << i;  // exact in f16

  // A tensor whose checksum is wrong comes back as a typed failed call; the server keeps
  // serving: the same session answers the next good call.
  WireTensor bad = sent;
  bad.xxh3_64 ^= 0x40;
  Error checksum = expect_rpc_error(
      [&] {
        auto req = session.forwardRequest();
        write_tensor(req.initHidden(), bad);
        req.send().wait(io.waitScope);
      },
      kj::Exception::Type::FAILED);
  EXPECT_EQ(checksum.code(), ErrorCode::kWireChecksum);
  EXPECT_NE(checksum.message().find("xxh3"), std::string::npos);

  Error shape = expect_rpc_error(
      [&] {
        const std::vector<float> wide(2 * 65, 1.0f);
        auto req = session.forwardRequest();
        write_tensor(req.initHidden(), codec.encode(wide.data(), std::vector<uint64_t>{2, 65}, {}));
        req.send().wait(io.waitScope);
      },
      kj::Exception::Type::FAILED);
  EXPECT_EQ(shape.code(), ErrorCode::kWireShape);
  EXPECT_NE(shape.message().find("64"), std::string::npos) << shape.what();

  auto again = session.forwardRequest();
  again.setReplyDtype(schema::Dtype::F16);
  write_tensor(again.initHidden(), sent);
  EXPECT_EQ(again.send().wait(io.waitScope).getHidden().getRawSize(), 2u * 64 * 2);
}

}  // namespace
}  // namespace lw
