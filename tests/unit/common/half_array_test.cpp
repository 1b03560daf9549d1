// The run-time chosen f16 array conversions (F16C where present) against the exact scalar
// conversions of common/half.h: identical bits for every f16 value and for f32 values around
// every rounding boundary, the same overflow verdict, NaN kept NaN.
#include "common/half_array.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/half.h"

namespace lw {
namespace {

bool is_nan16(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

TEST(HalfArrayTest, WidensEveryF16ValueExactly) {
  std::vector<uint16_t> all(65536 + 5);  // + an odd tail for the scalar remainder
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> fast(all.size(), -7.0f), ref(all.size(), -9.0f);
  fp16_to_fp32_array(all.data(), all.size(), fast.data());
  fp16_to_fp32_array_scalar(all.data(), all.size(), ref.data());
  for (size_t i = 0; i < all.size(); ++i) {
    if (is_nan16(all[i])) {
      EXPECT_TRUE(std::isnan(fast[i])) << "f16 0x" << std::hex << all[i];
    } else {
      EXPECT_EQ(f32_to_bits(fast[i]), f32_to_bits(ref[i])) << "f16 0x" << std::hex << all[i];
    }
  }
  std::cout << "path: " << half_array_path() << "\n";
}

// Every f16 value, the midpoints between neighbours (ties), one ulp either side of each
// midpoint, subnormals, the overflow boundary, infinities and random floats.
std::vector<float> narrowing_inputs() {
  std::vector<float> v;
  for (uint32_t h = 0; h < 0x7c00u; ++h) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const float a = fp16_to_fp32(static_cast<uint16_t>(h | sign));
      const float b = fp16_to_fp32(static_cast<uint16_t>((h + 1) | sign));
      const float mid = a + (b - a) * 0.5f;  // exact in f32
      v.push_back(a);
      v.push_back(mid);
      v.push_back(std::nextafter(mid, 0.0f));
      v.push_back(std::nextafter(mid, sign ? -1e30f : 1e30f));
    }
  }
  for (float x : {65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e30f, -65520.0f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::denorm_min(), 1e-45f, 3e-8f, 2.98e-8f}) {
    v.push_back(x);
  }
  std::mt19937 rng(42);
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (int i = 0; i < 100003; ++i) v.push_back(d(rng));
  return v;
}

TEST(HalfArrayTest, NarrowsLikeTheScalarConversion) {
  const std::vector<float> in = narrowing_inputs();
  std::vector<uint16_t> fast(in.size(), 0xdead), ref(in.size(), 0xbeef);
  fp32_to_fp16_array(in.data(), in.size(), fast.data());
  fp32_to_fp16_array_scalar(in.data(), in.size(), ref.data());
  size_t mismatches = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (fast[i] != ref[i] && ++mismatches < 10) {
      ADD_FAILURE() << "x=" << in[i] << " fast 0x" << std::hex << fast[i] << " ref 0x" << ref[i];
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(HalfArrayTest, OverflowVerdictMatchesAndNanStaysNan) {
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::vector<float> values;
    bool ok;
  };
  const std::vector<Case> cases = {
      {{1.0f, 65504.0f, -65504.0f}, true},
      {{1.0f, 65519.99f}, true},           // rounds down to 65504
      {{1.0f, 2.0f, 65520.0f}, false},     // rounds to inf: must fall back
      {{inf, -inf, 3.0f}, true},           // infinities are carried, not an overflow
      {std::vector<float>(17, 7.0f), true},
  };
  for (const Case& c : cases) {
    for (size_t pos = 0; pos < 2; ++pos) {
      // Put the interesting values in the vector body and in the scalar tail.
      std::vector<float> in(pos ? 9 : 0, 0.5f);
      in.insert(in.end(), c.values.begin(), c.values.end());
      std::vector<uint16_t> out(in.size());
      EXPECT_EQ(fp32_to_fp16_array(in.data(), in.size(), out.data()), c.ok) << in.back();
      EXPECT_EQ(fp32_to_fp16_array_scalar(in.data(), in.size(), out.data()), c.ok);
    }
  }
  std::vector<float> nans(11, std::numeric_limits<float>::quiet_NaN());
  std::vector<uint16_t> out(nans.size());
  EXPECT_TRUE(fp32_to_fp16_array(nans.data(), nans.size(), out.data()));
  for (uint16_t h : out) EXPECT_TRUE(is_nan16(h));
}

TEST(HalfArrayTest, UnalignedBuffersWork) {
  std::vector<uint8_t> bytes(2 * 37 + 1);
  std::vector<float> in(37), back(37);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i) * 0.25f - 3.0f;
  ASSERT_TRUE(fp32_to_fp16_array(in.data(), in.size(), bytes.data() + 1));
  fp16_to_fp32_array(bytes.data() + 1, in.size(), back.data());
  EXPECT_EQ(in, back);  // all exactly representable in f16
}

}  // namespace
}  // namespace lw
