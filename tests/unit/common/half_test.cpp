#include "common/half.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lw {
namespace {

TEST(HalfTest, EveryF16RoundTripsThroughF32) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << "h=" << h;
  }
}

TEST(HalfTest, F16RoundingMatchesCompiler) {
  for (uint32_t i = 0; i < 1000000; ++i) {
    float f = f32_from_bits(i * 2654435761u);
    if (std::isnan(f)) continue;
    _Float16 ref = static_cast<_Float16>(f);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    ASSERT_EQ(fp32_to_fp16(f), ref_bits) << "f=" << f;
  }
}

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(70000.0f), 0x7c00);
  EXPECT_EQ(fp16_to_fp32(0x0001), 5.9604644775390625e-8f);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);
  EXPECT_EQ(fp32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie rounds to even
  EXPECT_EQ(fp32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
}

}  // namespace
}  // namespace lw
