#include "schema/wire_convert.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <kj/exception.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/hash.h"

namespace lw {
namespace {

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A message as it would arrive: flattened to words and read back with reader limits.
struct Received {
  kj::Array<capnp::word> words;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader;
};

Received round_trip(capnp::MessageBuilder& builder, uint64_t traversal_limit_words = 1 << 24) {
  Received r;
  r.words = capnp::messageToFlatArray(builder);
  capnp::ReaderOptions options;
  options.traversalLimitInWords = traversal_limit_words;
  options.nestingLimit = 16;
  r.reader = std::make_unique<capnp::FlatArrayMessageReader>(r.words.asPtr(), options);
  return r;
}

TEST(WireConvertTest, RoundTripThroughARealMessage) {
  const std::vector<float> in = gaussian(3 * 4096, 7);
  const std::vector<uint64_t> shape = {3, 4096};
  WireCodec codec;
  for (WireDtype dtype : {WireDtype::F32, WireDtype::F16, WireDtype::BF16}) {
    for (CompressionMode mode :
         {CompressionMode::Off, CompressionMode::Zstd, CompressionMode::ShuffleZstd}) {
      SCOPED_TRACE(wire_dtype_name(dtype) + " " + std::to_string(static_cast<int>(mode)));
      EncodeOptions opt;
      opt.dtype = dtype;
      opt.mode = mode;
      const WireTensor sent = codec.encode(in.data(), shape, opt);

      capnp::MallocMessageBuilder builder;
      write_tensor(builder.initRoot<schema::Tensor>(), sent);
      Received msg = round_trip(builder);
      const schema::Tensor::Reader reader = msg.reader->getRoot<schema::Tensor>();

      DecodeLimits limits;
      limits.expected_last_dim = 4096;
      limits.max_rows = 8;
      const WireTensor copied = read_tensor(reader, limits);
      EXPECT_EQ(copied, sent);
      const WireTensorView view = view_tensor(reader, limits);
      // Zero-copy: the view points into the received words.
      const auto* begin = reinterpret_cast<const uint8_t*>(msg.words.begin());
      const auto* end = reinterpret_cast<const uint8_t*>(msg.words.end());
      EXPECT_TRUE(view.data.data() >= begin && view.data.data() + view.data.size() <= end);
      std::vector<float> out(in.size(), std::numeric_limits<float>::quiet_NaN());
      codec.decode_into(view, limits, out);
      EXPECT_EQ(out, codec.decode(wire_view(sent), limits));
      if (dtype == WireDtype::F32) {
        EXPECT_EQ(out, in);
      }
    }
  }
}

TEST(WireConvertTest, HostileMessagesAreRefused) {
  DecodeLimits limits;
  limits.max_raw_bytes = 4096;

  {  // A shape list longer than the rank limit is refused before it is copied.
    capnp::MallocMessageBuilder builder;
    auto t = builder.initRoot<schema::Tensor>();
    auto shape = t.initShape(1000);
    for (unsigned i = 0; i < 1000; ++i) shape.set(i, 1);
    Received msg = round_trip(builder);
    try {
      view_tensor(msg.reader->getRoot<schema::Tensor>(), limits);
      ADD_FAILURE() << "accepted a 1000-dim shape";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kWireShape) << e.what();
      EXPECT_NE(e.message().find("1000"), std::string::npos) << e.what();
    }
  }
  {  // A data field longer than any encoding of max_raw_bytes.
    capnp::MallocMessageBuilder builder;
    auto t = builder.initRoot<schema::Tensor>();
    t.initData(static_cast<unsigned>(wire_max_data_bytes(limits.max_raw_bytes) + 1));
    Received msg = round_trip(builder);
    try {
      read_tensor(msg.reader->getRoot<schema::Tensor>(), limits);
      ADD_FAILURE() << "accepted oversized data";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kWireTooLarge) << e.what();
    }
  }
  {  // Enum values from a newer peer pass through and are named by the codec.
    capnp::MallocMessageBuilder builder;
    auto t = builder.initRoot<schema::Tensor>();
    t.setDtype(static_cast<schema::Dtype>(7));
    Received msg = round_trip(builder);
    const WireTensorView v = view_tensor(msg.reader->getRoot<schema::Tensor>(), limits);
    EXPECT_EQ(static_cast<uint16_t>(v.dtype), 7u);
    WireCodec codec;
    try {
      codec.check_header(v, limits);
      ADD_FAILURE() << "accepted dtype 7";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kWireDtype);
      EXPECT_NE(e.message().find("7"), std::string::npos);
    }
    t.setDtype(schema::Dtype::F32);
    t.setEncoding(static_cast<schema::Encoding>(9));
    Received msg2 = round_trip(builder);
    try {
      codec.check_header(view_tensor(msg2.reader->getRoot<schema::Tensor>(), limits), limits);
      ADD_FAILURE() << "accepted encoding 9";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kWireEncoding);
    }
  }
  {  // A message over the reader's traversal limit fails inside Cap'n Proto (a kj exception
     // the server maps to a failed call), not with a crash.
    capnp::MallocMessageBuilder builder;
    auto t = builder.initRoot<schema::Tensor>();
    t.initData(64 * 1024);
    Received msg = round_trip(builder, /*traversal_limit_words=*/1024);
    EXPECT_THROW(view_tensor(msg.reader->getRoot<schema::Tensor>(), DecodeLimits{}), kj::Exception);
  }
  {  // Truncated words: the reader refuses the segment table or pointer.
    capnp::MallocMessageBuilder builder;
    write_tensor(builder.initRoot<schema::Tensor>(), WireTensor{});
    kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
    EXPECT_THROW(
        {
          capnp::FlatArrayMessageReader reader(words.slice(0, 1));
          view_tensor(reader.getRoot<schema::Tensor>(), DecodeLimits{});
        },
        kj::Exception);
  }
}

TEST(WireConvertTest, HandshakeMessagesBuildAndRead) {
  EXPECT_EQ(schema::PROTOCOL_VERSION, 1u);
  capnp::MallocMessageBuilder builder;
  auto req = builder.initRoot<schema::HandshakeRequest>();
  req.setProtocolVersion(schema::PROTOCOL_VERSION);
  req.setClientName("test-client");
  req.setArchitecture("llama-generic");
  const std::string digest = xxh3_128("manifest", 8).hex();
  req.setManifestDigest(digest);
  const uint8_t token[4] = {1, 2, 3, 4};
  req.setAuthToken(capnp::Data::Reader(token, 4));
  auto dtypes = req.initWantedDtypes(2);
  dtypes.set(0, schema::Dtype::F16);
  dtypes.set(1, schema::Dtype::F32);
  req.initWantedEncodings(1).set(0, schema::Encoding::SHUFFLE_ZSTD);

  Received msg = round_trip(builder);
  auto r = msg.reader->getRoot<schema::HandshakeRequest>();
  EXPECT_EQ(r.getProtocolVersion(), 1u);
  EXPECT_EQ(std::string(r.getClientName().cStr()), "test-client");
  EXPECT_EQ(std::string(r.getManifestDigest().cStr()), digest);
  EXPECT_EQ(r.getAuthToken().size(), 4u);
  ASSERT_EQ(r.getWantedDtypes().size(), 2u);
  EXPECT_EQ(r.getWantedDtypes()[0], schema::Dtype::F16);
  EXPECT_EQ(r.getWantedEncodings()[0], schema::Encoding::SHUFFLE_ZSTD);

  capnp::MallocMessageBuilder rb;
  auto resp = rb.initRoot<schema::HandshakeResponse>();
  resp.setProtocolVersion(schema::PROTOCOL_VERSION);
  resp.setLayerBegin(11);
  resp.setLayerEnd(22);
  resp.setHiddenSize(4096);
  auto limits = resp.initLimits();
  limits.setMaxTokensPerCall(2048);
  limits.setKvBudgetTokens(1 << 20);
  resp.initCapabilities().setBackend("cpu");
  Received rmsg = round_trip(rb);
  auto rr = rmsg.reader->getRoot<schema::HandshakeResponse>();
  EXPECT_EQ(rr.getLayerEnd() - rr.getLayerBegin(), 11u);
  EXPECT_EQ(rr.getLimits().getMaxTokensPerCall(), 2048u);
  EXPECT_EQ(std::string(rr.getCapabilities().getBackend().cStr()), "cpu");
  // A field the sender never set reads as its default.
  EXPECT_EQ(rr.getLimits().getSessionTtlSeconds(), 0u);
}

}  // namespace
}  // namespace lw
