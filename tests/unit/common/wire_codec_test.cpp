#include "common/wire_codec.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "common/hash.h"

namespace lw {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> gaussian(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Few distinct values, so shuffle + zstd compresses it several times over.
std::vector<float> compressible(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 7) % 13) * 0.25f - 1.0f;
  return v;
}

// Uniformly random finite bit patterns: nothing for zstd to find.
std::vector<float> random_bits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (float& x : v) {
    uint32_t bits = rng();
    if ((bits & 0x7f800000u) == 0x7f800000u) bits &= ~0x00800000u;  // keep it finite
    x = f32_from_bits(bits);
  }
  return v;
}

// The raw bytes the codec must produce, computed independently with common/half.h.
std::vector<uint8_t> expected_raw(const std::vector<float>& in, WireDtype dtype) {
  std::vector<uint8_t> raw;
  for (float x : in) {
    if (dtype == WireDtype::F32) {
      const uint32_t b = f32_to_bits(x);
      for (int k = 0; k < 4; ++k) raw.push_back(static_cast<uint8_t>(b >> (8 * k)));
    } else {
      const uint16_t h = dtype == WireDtype::F16 ? fp32_to_fp16(x) : fp32_to_bf16(x);
      raw.push_back(static_cast<uint8_t>(h));
      raw.push_back(static_cast<uint8_t>(h >> 8));
    }
  }
  return raw;
}

ErrorCode decode_error(const WireTensor& t, const DecodeLimits& limits = {},
                       std::string* message = nullptr) {
  try {
    decode_tensor(t, limits);
  } catch (const Error& e) {
    if (message) *message = e.message();
    return e.code();
  }
  ADD_FAILURE() << "decode succeeded";
  return ErrorCode::kInternal;
}

TEST(WireCodecTest, ByteShuffleKnownValues) {
  const uint8_t src[8] = {0x01, 0x02, 0x03, 0x04, 0x11, 0x12, 0x13, 0x14};
  uint8_t dst[8] = {0};
  wire_byte_shuffle(src, 2, 4, dst);
  const uint8_t want4[8] = {0x01, 0x11, 0x02, 0x12, 0x03, 0x13, 0x04, 0x14};
  EXPECT_EQ(0, std::memcmp(dst, want4, 8));
  uint8_t back[8] = {0};
  wire_byte_unshuffle(dst, 2, 4, back);
  EXPECT_EQ(0, std::memcmp(back, src, 8));
  wire_byte_shuffle(src, 4, 2, dst);
  const uint8_t want2[8] = {0x01, 0x03, 0x11, 0x13, 0x02, 0x04, 0x12, 0x14};
  EXPECT_EQ(0, std::memcmp(dst, want2, 8));
  const uint8_t src3[6] = {1, 2, 3, 4, 5, 6};
  uint8_t dst3[6];
  wire_byte_shuffle(src3, 2, 3, dst3);
  const uint8_t want3[6] = {1, 4, 2, 5, 3, 6};
  EXPECT_EQ(0, std::memcmp(dst3, want3, 6));
}

TEST(WireCodecTest, NamesAndSizes) {
  for (WireDtype d : {WireDtype::F32, WireDtype::F16, WireDtype::BF16}) {
    WireDtype back = WireDtype::F32;
    ASSERT_TRUE(wire_dtype_from_name(wire_dtype_name(d), &back));
    EXPECT_EQ(back, d);
  }
  WireDtype unused;
  EXPECT_FALSE(wire_dtype_from_name("fp8", &unused));
  EXPECT_EQ(wire_dtype_size(WireDtype::F32), 4u);
  EXPECT_EQ(wire_dtype_size(WireDtype::BF16), 2u);
  EXPECT_EQ(wire_dtype_size(static_cast<WireDtype>(9)), 0u);
  EXPECT_EQ(wire_dtype_name(static_cast<WireDtype>(9)), "unknown(9)");
  EXPECT_EQ(wire_encoding_name(WireEncoding::ShuffleZstd), "shuffle-zstd");
  for (uint64_t n : {0ull, 1ull, 1000ull, 131072ull, 131071ull, 20971520ull}) {
    EXPECT_EQ(wire_max_data_bytes(n), ZSTD_compressBound(n)) << n;
  }
}

// Every dtype x encoding, odd sizes: f32 is bit-exact, f16/bf16 equal the reference rounding
// and stay within their relative error bound.
TEST(WireCodecTest, RoundTripEveryDtypeAndEncoding) {
  const std::vector<uint64_t> shape = {37, 129};
  const std::vector<float> in = gaussian(37 * 129, 11, 3.0f);
  WireCodec codec;
  for (WireDtype dtype : {WireDtype::F32, WireDtype::F16, WireDtype::BF16}) {
    for (CompressionMode mode :
         {CompressionMode::Off, CompressionMode::Zstd, CompressionMode::ShuffleZstd}) {
      SCOPED_TRACE(wire_dtype_name(dtype) + " mode " + std::to_string(static_cast<int>(mode)));
      EncodeOptions opt;
      opt.dtype = dtype;
      opt.mode = mode;
      WireStats stats;
      const WireTensor t = codec.encode(in.data(), shape, opt, &stats);
      const WireEncoding want = mode == CompressionMode::Off    ? WireEncoding::Raw
                                : mode == CompressionMode::Zstd ? WireEncoding::Zstd
                                                                : WireEncoding::ShuffleZstd;
      EXPECT_EQ(t.encoding, want);
      EXPECT_EQ(t.dtype, dtype);
      EXPECT_EQ(t.shape, shape);
      const std::vector<uint8_t> raw = expected_raw(in, dtype);
      EXPECT_EQ(t.raw_size, raw.size());
      EXPECT_EQ(t.xxh3_64, xxh3_64(raw.data(), raw.size()));
      if (want == WireEncoding::Raw) {
        EXPECT_EQ(t.data, raw);
      }
      EXPECT_EQ(stats.tensors, 1u);
      EXPECT_EQ(stats.raw_bytes, raw.size());
      EXPECT_EQ(stats.wire_bytes, t.data.size());
      EXPECT_EQ(stats.compressed, want == WireEncoding::Raw ? 0u : 1u);

      std::vector<float> out(in.size(), kNaN);  // poisoned
      WireStats rx;
      codec.decode_into(wire_view(t), DecodeLimits{}, out, &rx);
      EXPECT_EQ(rx, stats);
      const double rel = dtype == WireDtype::F32   ? 0.0
                         : dtype == WireDtype::F16 ? std::ldexp(1.0, -11)
                                                   : std::ldexp(1.0, -8);
      for (size_t i = 0; i < in.size(); ++i) {
        const float ref = dtype == WireDtype::F32   ? in[i]
                          : dtype == WireDtype::F16 ? fp16_to_fp32(fp32_to_fp16(in[i]))
                                                    : bf16_to_fp32(fp32_to_bf16(in[i]));
        ASSERT_EQ(f32_to_bits(out[i]), f32_to_bits(ref)) << i;
        // f16 subnormals (|x| < 2^-14) have an absolute step of 2^-24.
        const double tol = std::max(rel * std::fabs(in[i]), std::ldexp(1.0, -25));
        ASSERT_LE(std::fabs(static_cast<double>(out[i]) - in[i]), tol) << i << " " << in[i];
      }
    }
  }
}

TEST(WireCodecTest, AutoCompressesOnlyWhenItPays) {
  WireCodec codec;
  EncodeOptions opt;
  opt.dtype = WireDtype::F16;
  opt.mode = CompressionMode::Auto;
  const std::vector<uint64_t> big = {256, 1024};  // 512 KiB of f16, above the 64 KiB threshold

  WireStats stats;
  const std::vector<float> easy = compressible(256 * 1024);
  const WireTensor a = codec.encode(easy.data(), big, opt, &stats);
  EXPECT_EQ(a.encoding, WireEncoding::ShuffleZstd);
  EXPECT_LT(a.data.size() * 4, a.raw_size);
  EXPECT_EQ(stats.compressed, 1u);
  EXPECT_EQ(decode_tensor(a, {}), codec.decode(wire_view(a), {}));

  opt.dtype = WireDtype::F32;
  const std::vector<float> noise = random_bits(256 * 1024, 5);
  const WireTensor b = codec.encode(noise.data(), big, opt, &stats);
  EXPECT_EQ(b.encoding, WireEncoding::Raw);
  EXPECT_EQ(b.data.size(), b.raw_size);
  EXPECT_EQ(stats.compression_rejected, 1u);
  const std::vector<float> back = decode_tensor(b, {});
  EXPECT_EQ(0, std::memcmp(back.data(), noise.data(), noise.size() * 4));

  // Below the threshold nothing is tried, however compressible.
  const std::vector<uint64_t> decode_size = {1, 4096};
  const WireTensor c = codec.encode(easy.data(), decode_size, opt, &stats);
  EXPECT_EQ(c.encoding, WireEncoding::Raw);
  EXPECT_EQ(stats.compression_rejected, 1u);
  EXPECT_EQ(stats.compressed, 1u);
  EXPECT_EQ(stats.tensors, 3u);

  // An unreachable ratio keeps even compressible data raw.
  opt.min_ratio = 1e9;
  EXPECT_EQ(codec.encode(easy.data(), big, opt, &stats).encoding, WireEncoding::Raw);
  EXPECT_EQ(stats.compression_rejected, 2u);
}

TEST(WireCodecTest, F16OverflowFallsBackToF32) {
  EncodeOptions opt;
  opt.dtype = WireDtype::F16;
  opt.mode = CompressionMode::Off;
  WireStats stats;
  std::vector<float> in = gaussian(300, 3);
  const std::vector<uint64_t> shape = {3, 100};

  in[150] = 65504.0f;                                // the largest f16
  in[151] = 65519.0f;                                // rounds down to 65504: still representable
  in[152] = std::numeric_limits<float>::infinity();  // carried as f16 inf, not an overflow
  WireTensor t = encode_tensor(in.data(), shape, opt, &stats);
  EXPECT_EQ(t.dtype, WireDtype::F16);
  EXPECT_EQ(stats.f16_overflow_fallbacks, 0u);
  std::vector<float> out = decode_tensor(t, {});
  EXPECT_EQ(out[150], 65504.0f);
  EXPECT_EQ(out[151], 65504.0f);
  EXPECT_TRUE(std::isinf(out[152]));

  in[299] = -70000.0f;  // the last element overflows: the whole tensor goes f32
  t = encode_tensor(in.data(), shape, opt, &stats);
  EXPECT_EQ(t.dtype, WireDtype::F32);
  EXPECT_EQ(t.raw_size, 300u * 4);
  EXPECT_EQ(stats.f16_overflow_fallbacks, 1u);
  out = decode_tensor(t, {});
  EXPECT_EQ(0, std::memcmp(out.data(), in.data(), in.size() * 4));

  opt.dtype = WireDtype::BF16;  // bf16 covers 70000, but not FLT_MAX (rounds to inf)
  EXPECT_EQ(encode_tensor(in.data(), shape, opt, &stats).dtype, WireDtype::BF16);
  in[10] = std::numeric_limits<float>::max();
  EXPECT_EQ(encode_tensor(in.data(), shape, opt, &stats).dtype, WireDtype::F32);
  EXPECT_EQ(stats.f16_overflow_fallbacks, 2u);
}

TEST(WireCodecTest, EmptyAndReusedCodec) {
  WireCodec codec;
  EncodeOptions opt;
  opt.mode = CompressionMode::ShuffleZstd;
  const std::vector<uint64_t> empty = {0, 4096};
  const WireTensor e = codec.encode(nullptr, empty, opt);
  EXPECT_EQ(e.raw_size, 0u);
  EXPECT_TRUE(codec.decode(wire_view(e), {}).empty());

  // Big, small, big through one codec: the swapped scratch buffers must not leak across.
  const std::vector<float> big = gaussian(64 * 1000, 1);
  const std::vector<float> small = gaussian(10, 2);
  for (WireDtype d : {WireDtype::F32, WireDtype::F16}) {
    opt.dtype = d;
    for (int round = 0; round < 2; ++round) {
      const WireTensor tb = codec.encode(big.data(), std::vector<uint64_t>{64, 1000}, opt);
      const WireTensor ts = codec.encode(small.data(), std::vector<uint64_t>{1, 10}, opt);
      EXPECT_EQ(codec.decode(wire_view(ts), {}), decode_tensor(ts, {}));
      EXPECT_EQ(codec.decode(wire_view(tb), {}), decode_tensor(tb, {}));
      EXPECT_EQ(codec.decode(wire_view(ts), {}).size(), 10u);
    }
  }
}

TEST(WireCodecTest, ZstdWorkersStillWriteContentSize) {
  EncodeOptions opt;
  opt.mode = CompressionMode::ShuffleZstd;
  opt.zstd_workers = 2;
  const std::vector<float> in = gaussian(512 * 1024, 4);
  const WireTensor t = encode_tensor(in.data(), std::vector<uint64_t>{512, 1024}, opt);
  EXPECT_EQ(ZSTD_getFrameContentSize(t.data.data(), t.data.size()), t.raw_size);
  const std::vector<float> out = decode_tensor(t, {});
  EXPECT_EQ(0, std::memcmp(out.data(), in.data(), in.size() * 4));
}

// A table of named corruptions, each applied to a valid tensor, each with its code and a
// word the message must contain (the field it names).
TEST(WireCodecTest, CorruptionsAreRefusedWithTheirCode) {
  const std::vector<float> in = gaussian(4 * 256, 9);
  const std::vector<uint64_t> shape = {4, 256};
  EncodeOptions raw_opt;
  raw_opt.dtype = WireDtype::F16;
  raw_opt.mode = CompressionMode::Off;
  EncodeOptions zstd_opt = raw_opt;
  zstd_opt.mode = CompressionMode::ShuffleZstd;
  const WireTensor raw = encode_tensor(in.data(), shape, raw_opt);
  const WireTensor zst = encode_tensor(in.data(), shape, zstd_opt);

  struct Case {
    const char* name;
    const WireTensor* base;
    std::function<void(WireTensor&, DecodeLimits&)> mutate;
    ErrorCode code;
    const char* word;
  };
  const std::vector<Case> cases = {
      {"bad dtype value", &raw, [](WireTensor& t, DecodeLimits&) { t.dtype = WireDtype(7); },
       ErrorCode::kWireDtype, "dtype"},
      {"unknown encoding", &zst, [](WireTensor& t, DecodeLimits&) { t.encoding = WireEncoding(3); },
       ErrorCode::kWireEncoding, "encoding"},
      {"shape does not match rawSize", &raw, [](WireTensor& t, DecodeLimits&) { t.shape[0] = 5; },
       ErrorCode::kWireShape, "rawSize"},
      {"dtype does not match rawSize", &raw,
       [](WireTensor& t, DecodeLimits&) { t.dtype = WireDtype::F32; }, ErrorCode::kWireShape,
       "rawSize"},
      {"shape product overflows", &raw,
       [](WireTensor& t, DecodeLimits&) {
         t.shape = {1ull << 40, 1ull << 40};
       },
       ErrorCode::kWireShape, "overflows"},
      {"bytes overflow", &raw, [](WireTensor& t, DecodeLimits&) { t.shape = {1ull << 63}; },
       ErrorCode::kWireShape, "rawSize"},
      {"rank above limit", &raw,
       [](WireTensor& t, DecodeLimits&) { t.shape = {1, 1, 1, 1, 1, 1, 1, 4, 256}; },
       ErrorCode::kWireShape, "rank"},
      {"rawSize over the limit", &raw,
       [](WireTensor& t, DecodeLimits& l) { l.max_raw_bytes = t.raw_size - 1; },
       ErrorCode::kWireTooLarge, "rawSize"},
      {"too many rows", &raw, [](WireTensor&, DecodeLimits& l) { l.max_rows = 3; },
       ErrorCode::kWireTooLarge, "rows"},
      {"wrong hidden size", &raw, [](WireTensor&, DecodeLimits& l) { l.expected_last_dim = 512; },
       ErrorCode::kWireShape, "512"},
      {"truncated raw data", &raw, [](WireTensor& t, DecodeLimits&) { t.data.pop_back(); },
       ErrorCode::kWireDecode, "data"},
      {"raw data too long", &raw, [](WireTensor& t, DecodeLimits&) { t.data.push_back(0); },
       ErrorCode::kWireDecode, "data"},
      {"not a zstd frame", &zst, [](WireTensor& t, DecodeLimits&) { t.data[0] ^= 0xff; },
       ErrorCode::kWireDecode, "zstd"},
      {"empty zstd data", &zst, [](WireTensor& t, DecodeLimits&) { t.data.clear(); },
       ErrorCode::kWireDecode, "zstd"},
      {"truncated zstd frame", &zst,
       [](WireTensor& t, DecodeLimits&) { t.data.resize(t.data.size() / 2); },
       ErrorCode::kWireDecode, "truncated"},
      {"bytes after the frame", &zst, [](WireTensor& t, DecodeLimits&) { t.data.push_back(1); },
       ErrorCode::kWireDecode, "after"},
      {"frame content size lies", &zst,
       [](WireTensor& t, DecodeLimits&) {
         t.shape = {2, 256};  // consistent header, but the frame holds 4 x 256
         t.raw_size /= 2;
       },
       ErrorCode::kWireDecode, "content size"},
      {"checksum field wrong", &zst, [](WireTensor& t, DecodeLimits&) { t.xxh3_64 ^= 1; },
       ErrorCode::kWireChecksum, "xxh3"},
      {"raw byte flipped", &raw, [](WireTensor& t, DecodeLimits&) { t.data[100] ^= 0x10; },
       ErrorCode::kWireChecksum, "xxh3"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WireTensor t = *c.base;
    DecodeLimits limits;
    c.mutate(t, limits);
    std::string message;
    EXPECT_EQ(decode_error(t, limits, &message), c.code) << message;
    EXPECT_NE(message.find(c.word), std::string::npos) << message;
  }
  // The checksum message names both values.
  WireTensor t = raw;
  t.xxh3_64 = 0x0123456789abcdefull;
  std::string message;
  decode_error(t, {}, &message);
  EXPECT_NE(message.find("0x0123456789abcdef"), std::string::npos) << message;
  char computed[32];
  std::snprintf(computed, sizeof(computed), "0x%016llx",
                static_cast<unsigned long long>(raw.xxh3_64));
  EXPECT_NE(message.find(computed), std::string::npos) << message;

  // A destination of the wrong size is refused before anything is written.
  WireCodec codec;
  std::vector<float> wrong(in.size() - 1, kNaN);
  try {
    codec.decode_into(wire_view(raw), {}, wrong);
    ADD_FAILURE() << "decode_into accepted a short destination";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kWireShape);
  }
  EXPECT_TRUE(std::isnan(wrong[0]));
}

// Bit flips anywhere in the data (and now and then in a header field) either decode to
// exactly the original values or throw lw::Error; never a crash or a silent wrong value.
TEST(WireCodecTest, BitFlipFuzz) {
  const std::vector<float> in = gaussian(8 * 96, 21);
  const std::vector<uint64_t> shape = {8, 96};
  std::vector<WireTensor> bases;
  for (WireDtype d : {WireDtype::F32, WireDtype::F16, WireDtype::BF16}) {
    for (CompressionMode m :
         {CompressionMode::Off, CompressionMode::Zstd, CompressionMode::ShuffleZstd}) {
      EncodeOptions opt;
      opt.dtype = d;
      opt.mode = m;
      bases.push_back(encode_tensor(in.data(), shape, opt));
    }
  }
  std::vector<std::vector<float>> originals;
  for (const WireTensor& b : bases) originals.push_back(decode_tensor(b, {}));

  std::mt19937 rng(1234);
  WireCodec codec;
  int errors = 0, exact = 0;
  constexpr int kTrials = 900;
  for (int trial = 0; trial < kTrials; ++trial) {
    const size_t which = trial % bases.size();
    WireTensor t = bases[which];
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      const uint32_t r = rng();
      switch (r % 16) {
        case 0:
          t.raw_size ^= 1ull << (rng() % 64);
          break;
        case 1:
          t.shape[rng() % 2] ^= 1ull << (rng() % 64);
          break;
        case 2:
          t.xxh3_64 ^= 1ull << (rng() % 64);
          break;
        case 3:
          t.data.resize(rng() % (t.data.size() + 1));
          break;
        default:
          if (!t.data.empty()) t.data[rng() % t.data.size()] ^= static_cast<uint8_t>(1u << (r % 8));
      }
    }
    std::vector<float> out(originals[which].size(), kNaN);
    try {
      codec.decode_into(wire_view(t), {}, out);
      ASSERT_EQ(0, std::memcmp(out.data(), originals[which].data(), out.size() * 4))
          << "trial " << trial << " decoded to different values";
      ++exact;
    } catch (const Error& e) {
      ++errors;
      EXPECT_EQ(e.id().substr(0, 8), "LW-WIRE-") << e.what();
    }
  }
  EXPECT_EQ(errors + exact, kTrials);
  EXPECT_GT(errors, kTrials / 2);
}

}  // namespace
}  // namespace lw
