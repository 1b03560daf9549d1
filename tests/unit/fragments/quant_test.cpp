#include "fragments/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/half.h"

namespace lw {
namespace {

// f16 bit patterns used by the hand-built blocks.
constexpr uint16_t kHalf0_25 = 0x3400;
constexpr uint16_t kHalf0_5 = 0x3800;
constexpr uint16_t kHalf1 = 0x3C00;

std::vector<float> decode(GgmlType type, const void* block, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
  dequantize_row(type, block, out.data(), n);
  return out;
}

TEST(QuantTest, TraitsMatchGgml) {
  struct Row {
    uint32_t id;
    const char* name;
    uint32_t block, bytes;
    bool supported;
  };
  const Row rows[] = {
      {0, "f32", 1, 4, true},        {1, "f16", 1, 2, true},        {2, "q4_0", 32, 18, false},
      {3, "q4_1", 32, 20, false},    {6, "q5_0", 32, 22, false},    {7, "q5_1", 32, 24, false},
      {8, "q8_0", 32, 34, true},     {9, "q8_1", 32, 36, false},    {10, "q2_K", 256, 84, false},
      {11, "q3_K", 256, 110, false}, {12, "q4_K", 256, 144, true},  {13, "q5_K", 256, 176, true},
      {14, "q6_K", 256, 210, true},  {15, "q8_K", 256, 292, false}, {30, "bf16", 1, 2, true}};
  for (const Row& r : rows) {
    const TypeTraits* t = type_traits(r.id);
    ASSERT_NE(t, nullptr) << r.id;
    EXPECT_EQ(static_cast<uint32_t>(t->type), r.id);
    EXPECT_EQ(t->name, r.name);
    EXPECT_EQ(t->block_size, r.block) << r.name;
    EXPECT_EQ(t->type_size, r.bytes) << r.name;
    EXPECT_EQ(t->supported, r.supported) << r.name;
    EXPECT_EQ(type_name(r.id), r.name);
    EXPECT_EQ(&type_traits(t->type), t);
  }
  for (uint32_t id : {4u, 5u, 16u, 29u, 31u, 1000u, 0xFFFFFFFFu}) {
    EXPECT_EQ(type_traits(id), nullptr) << id;
  }
  EXPECT_EQ(type_name(4), "type#4");
  EXPECT_EQ(type_name(99), "type#99");
  // The block structs agree with the traits.
  EXPECT_EQ(sizeof(BlockQ8_0), type_traits(GgmlType::Q8_0).type_size);
  EXPECT_EQ(sizeof(BlockQ4_K), type_traits(GgmlType::Q4_K).type_size);
  EXPECT_EQ(sizeof(BlockQ5_K), type_traits(GgmlType::Q5_K).type_size);
  EXPECT_EQ(sizeof(BlockQ6_K), type_traits(GgmlType::Q6_K).type_size);
}

TEST(QuantTest, RowSize) {
  uint64_t bytes = 0;
  ASSERT_TRUE(row_size(GgmlType::Q4_K, 4096, &bytes));
  EXPECT_EQ(bytes, 16u * 144u);
  ASSERT_TRUE(row_size(GgmlType::Q8_0, 64, &bytes));
  EXPECT_EQ(bytes, 68u);
  ASSERT_TRUE(row_size(GgmlType::F16, 3, &bytes));
  EXPECT_EQ(bytes, 6u);
  ASSERT_TRUE(row_size(GgmlType::Q6_K, 0, &bytes));
  EXPECT_EQ(bytes, 0u);
  EXPECT_FALSE(row_size(GgmlType::Q4_K, 300, &bytes));  // not a multiple of 256
  EXPECT_FALSE(row_size(GgmlType::Q8_0, 33, &bytes));
  // 2^62 f32 values are 2^64 bytes: overflow.
  EXPECT_FALSE(row_size(GgmlType::F32, uint64_t{1} << 62, &bytes));
  // Largest Q8_0 row that fits, then one block more.
  const uint64_t max_blocks = std::numeric_limits<uint64_t>::max() / 34;
  ASSERT_TRUE(row_size(GgmlType::Q8_0, max_blocks * 32, &bytes));
  EXPECT_EQ(bytes, max_blocks * 34);
  EXPECT_FALSE(row_size(GgmlType::Q8_0, (max_blocks + 1) * 32, &bytes));
  EXPECT_FALSE(row_size(static_cast<GgmlType>(4), 32, &bytes));
}

TEST(QuantTest, BadSizesAndTypesThrow) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> out(512);
  try {
    dequantize_row(GgmlType::Q4_K, buf.data(), out.data(), 100);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kQuantSize);
    EXPECT_EQ(e.id(), "LW-QUANT-001");
    EXPECT_NE(e.message().find("100"), std::string::npos) << e.message();
  }
  EXPECT_THROW(dequantize_row(GgmlType::Q8_0, buf.data(), out.data(), -32), Error);
  try {
    quantize_row(GgmlType::Q6_K, out.data(), buf.data(), 255);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kQuantSize);
  }
  try {
    dequantize_row(GgmlType::Q4_0, buf.data(), out.data(), 32);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kGgufTensorType);
    EXPECT_NE(e.message().find("q4_0"), std::string::npos) << e.message();
  }
  EXPECT_THROW(quantize_row(GgmlType::Q2_K, out.data(), buf.data(), 256), Error);
}

TEST(QuantTest, Q8_0HandBuiltBlock) {
  BlockQ8_0 b[2] = {};
  b[0].d = kHalf0_5;
  b[0].qs[0] = 0;
  b[0].qs[1] = 1;
  b[0].qs[2] = -1;
  b[0].qs[3] = 127;
  b[0].qs[31] = -128;
  b[1].d = 0xC000;  // -2.0
  b[1].qs[5] = 3;
  const std::vector<float> y = decode(GgmlType::Q8_0, b, 64);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.5f);
  EXPECT_EQ(y[2], -0.5f);
  EXPECT_EQ(y[3], 63.5f);    // 0.5 * 127
  EXPECT_EQ(y[31], -64.0f);  // 0.5 * -128
  EXPECT_EQ(y[32 + 5], -6.0f);
  EXPECT_EQ(y[32 + 6], 0.0f);
}

TEST(QuantTest, Q4_KHandBuiltBlock) {
  BlockQ4_K b = {};
  b.d = kHalf1;       // d = 1
  b.dmin = kHalf0_5;  // dmin = 0.5
  // Sub-blocks 0..3 keep sc / m in the low 6 bits of scales[j] / scales[j+4].
  b.scales[0] = 3;         // sc0 = 3
  b.scales[4] = 2;         // m0 = 2
  b.scales[1] = 0x80 | 1;  // sc1 = 1; top bits 0b10 = high bits of sc5
  b.scales[5] = 0x40 | 0;  // m1 = 0;  top bits 0b01 = high bits of m5
  // Sub-blocks 4..7: low nibbles in scales[j+4], high 2 bits in the tops of scales[j-4], [j].
  b.scales[8] = 0x21;  // sc4 = 1, m4 = 2 (tops of scales[0], scales[4] are 0)
  b.scales[9] = 0xA5;  // sc5 = 0x5 | (2 << 4) = 37, m5 = 0xA | (1 << 4) = 26
  b.qs[0] = 0x94;      // value 0 (sub-block 0): q=4; value 32 (sub-block 1): q=9
  b.qs[64] = 0x7F;     // value 128 (sub-block 4): q=15; value 160 (sub-block 5): q=7
  b.qs[95] = 0xF0;     // value 159: q=0; value 191: q=15
  const std::vector<float> y = decode(GgmlType::Q4_K, &b, 256);
  EXPECT_EQ(y[0], 11.0f);     // 1*3*4 - 0.5*2
  EXPECT_EQ(y[1], -1.0f);     // 1*3*0 - 0.5*2
  EXPECT_EQ(y[32], 9.0f);     // 1*1*9 - 0
  EXPECT_EQ(y[128], 14.0f);   // 1*1*15 - 0.5*2
  EXPECT_EQ(y[159], -1.0f);   // 1*1*0 - 0.5*2
  EXPECT_EQ(y[160], 246.0f);  // 1*37*7 - 0.5*26
  EXPECT_EQ(y[191], 542.0f);  // 1*37*15 - 0.5*26
  EXPECT_EQ(y[161], -13.0f);  // 1*37*0 - 0.5*26
  EXPECT_EQ(y[255], 0.0f);    // sub-block 7: sc = m = 0

  uint8_t sc, m;
  get_scale_min_k4(5, b.scales, &sc, &m);
  EXPECT_EQ(sc, 37);
  EXPECT_EQ(m, 26);
}

TEST(QuantTest, Q5_KHandBuiltBlock) {
  BlockQ5_K b = {};
  b.d = kHalf1;
  b.dmin = kHalf0_25;
  b.scales[0] = 1;        // sc0 = 1, m0 = 0
  b.scales[2] = 1;        // sc2 = 1, m2 = 0
  b.scales[3] = 2;        // sc3 = 2
  b.scales[7] = 1;        // m3 = 1
  b.qs[0] = 0x03;         // value 0: low bits 3
  b.qh[0] = 0x01;         // value 0: bit u1 = 1 (pair 0, low nibble) -> +16
  b.qs[32 + 2] = 0x50;    // value 66: low bits 0; value 98: low bits 5
  b.qh[2] = 0x04 | 0x08;  // pair 1: bit 4 for value 66, bit 8 for value 98
  b.qs[1] = 0x0F;         // value 1: low bits 15, no qh bit
  const std::vector<float> y = decode(GgmlType::Q5_K, &b, 256);
  EXPECT_EQ(y[0], 19.0f);    // 1*1*(3+16) - 0
  EXPECT_EQ(y[1], 15.0f);    // 1*1*15
  EXPECT_EQ(y[66], 16.0f);   // 1*1*(0+16)
  EXPECT_EQ(y[98], 41.75f);  // 1*2*(5+16) - 0.25*1
  EXPECT_EQ(y[99], -0.25f);  // 1*2*0 - 0.25*1
  EXPECT_EQ(y[34], 0.0f);    // sub-block 1: sc = 0, qh bit 2 of qh[2] is clear
}

TEST(QuantTest, Q6_KHandBuiltBlock) {
  BlockQ6_K b = {};
  b.d = kHalf0_5;
  b.scales[0] = -3;
  b.scales[3] = 7;
  b.scales[4] = 127;
  b.scales[9] = -128;
  // First half (values 0..127): ql[0..63], qh[0..31], scales[0..7].
  b.ql[0] = 0xF5;         // value 0: low 5; value 64: low 15
  b.qh[0] = 0x01 | 0x30;  // value 0: high 1 -> q = 21; value 64: high 3 -> q = 63
  b.ql[48] = 0x0A;        // value 48 (l=16, scale 3): low 10
  b.qh[16] = 0x08;        // value 48: high bits (qh >> 2) & 3 = 2 -> q = 42
  // Second half (values 128..255): ql[64..], qh[32..], scales[8..15]; value 145 (l=17)
  // uses scales[9] and q = 0 (all bits clear).
  const std::vector<float> y = decode(GgmlType::Q6_K, &b, 256);
  EXPECT_EQ(y[0], 16.5f);      // 0.5 * -3 * (21 - 32)
  EXPECT_EQ(y[64], 1968.5f);   // 0.5 * 127 * (63 - 32)
  EXPECT_EQ(y[48], 35.0f);     // 0.5 * 7 * (42 - 32)
  EXPECT_EQ(y[145], 2048.0f);  // 0.5 * -128 * (0 - 32)
  EXPECT_EQ(y[1], 48.0f);      // 0.5 * -3 * (0 - 32)
  EXPECT_EQ(y[200], 0.0f);     // scale 0
}

double normalized_rms_error(GgmlType type, const std::vector<float>& x) {
  uint64_t bytes = 0;
  EXPECT_TRUE(row_size(type, x.size(), &bytes));
  std::vector<uint8_t> q(bytes);
  quantize_row(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
  const std::vector<float> y = decode(type, q.data(), static_cast<int64_t>(x.size()));
  double err = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

// ||dequant(quant(x)) - x|| / ||x|| measured on 64Ki gaussian values (seed 42): Q8_0 0.0054,
// Q6_K 0.0177, Q5_K 0.0361, Q4_K 0.0715 (each about half the previous: one bit more). Bounds
// are 1.5x those.
TEST(QuantTest, RoundTripErrorOnGaussianData) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(65536);
  for (float& v : x) v = dist(rng);
  const double e8 = normalized_rms_error(GgmlType::Q8_0, x);
  const double e6 = normalized_rms_error(GgmlType::Q6_K, x);
  const double e5 = normalized_rms_error(GgmlType::Q5_K, x);
  const double e4 = normalized_rms_error(GgmlType::Q4_K, x);
  EXPECT_LT(e8, 0.008);
  EXPECT_LT(e6, 0.027);
  EXPECT_LT(e5, 0.054);
  EXPECT_LT(e4, 0.107);
  // Each extra bit must help.
  EXPECT_LT(e8, e6);
  EXPECT_LT(e6, e5);
  EXPECT_LT(e5, e4);
}

TEST(QuantTest, QuantizeReproducesExactGrids) {
  // Values already on a Q8_0 grid (d = 0.5, |q| <= 127 with 127 present) round-trip exactly.
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = 0.5f * static_cast<float>((i * 37) % 255 - 127);
  x[0] = 63.5f;
  x[32] = -63.5f;
  std::vector<BlockQ8_0> q(2);
  quantize_row(GgmlType::Q8_0, x.data(), q.data(), 64);
  EXPECT_EQ(q[0].d, kHalf0_5);
  EXPECT_EQ(q[0].qs[0], 127);
  EXPECT_EQ(q[1].qs[0], -127);
  EXPECT_EQ(decode(GgmlType::Q8_0, q.data(), 64), x);
  // All-zero rows quantize to all-zero values in every format.
  const std::vector<float> zeros(512, 0.0f);
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    std::vector<uint8_t> buf(512 * 4);
    quantize_row(t, zeros.data(), buf.data(), 512);
    EXPECT_EQ(decode(t, buf.data(), 512), zeros) << type_traits(t).name;
  }
}

TEST(QuantTest, FloatFormatsAreExact) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 100.0f);
  std::vector<float> x(1000);
  for (float& v : x) v = dist(rng);
  x[0] = 0.0f;
  x[1] = -0.0f;
  x[2] = 65504.0f;
  x[3] = 1e-7f;  // f16 subnormal range

  std::vector<float> y(x.size());
  quantize_row(GgmlType::F32, x.data(), y.data(), 1000);
  EXPECT_EQ(decode(GgmlType::F32, y.data(), 1000), x);

  std::vector<uint16_t> h(x.size());
  quantize_row(GgmlType::F16, x.data(), h.data(), 1000);
  const std::vector<float> yf16 = decode(GgmlType::F16, h.data(), 1000);
  std::vector<uint16_t> b(x.size());
  quantize_row(GgmlType::BF16, x.data(), b.data(), 1000);
  const std::vector<float> ybf16 = decode(GgmlType::BF16, b.data(), 1000);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], fp32_to_fp16(x[i])) << i;
    ASSERT_EQ(yf16[i], fp16_to_fp32(fp32_to_fp16(x[i]))) << i;
    ASSERT_EQ(b[i], fp32_to_bf16(x[i])) << i;
    ASSERT_EQ(ybf16[i], bf16_to_fp32(fp32_to_bf16(x[i]))) << i;
    // A value that is already f16 / bf16 decodes to itself.
    uint16_t again;
    quantize_row(GgmlType::F16, &yf16[i], &again, 1);
    ASSERT_EQ(again, h[i]);
  }
  EXPECT_EQ(yf16[2], 65504.0f);
  EXPECT_EQ(h[3], fp32_to_fp16(1e-7f));
  EXPECT_NE(h[3], 0);
}

}  // namespace
}  // namespace lw
