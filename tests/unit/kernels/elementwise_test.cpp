#include "kernels/cpu/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/unit/kernels/kernel_test_util.h"

namespace lw {
namespace {

using test::random_floats;

TEST(Elementwise, HandComputedValues) {
  const float g[3] = {0.0f, 1.0f, -2.0f}, u[3] = {5.0f, 2.0f, 1.0f};
  float out[3] = {NAN, NAN, NAN};
  swiglu_ref(g, u, 3, out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_NEAR(out[1], 2 * 0.7310585786, 1e-6);   // silu(1) = 1 / (1 + e^-1)
  EXPECT_NEAR(out[2], -2 * 0.1192029220, 1e-6);  // silu(-2) = -2 / (1 + e^2)
  float sum[3] = {NAN, NAN, NAN};
  add_ref(g, u, 3, sum);
  EXPECT_EQ(sum[0], 5.0f);
  EXPECT_EQ(sum[2], -1.0f);
}

// Tolerance: swiglu in f32 vs double, normalized error <= 1e-6; add is exact.
TEST(Elementwise, FastMatchesReference) {
  ThreadPool pool(3);
  for (int64_t n : {1, 17, 16384 * 3 + 5}) {
    const auto a = random_floats(n, 1 + n, 3.0f), b = random_floats(n, 2 + n);
    std::vector<float> want(n), got(n);
    test::poison(want);
    test::poison(got);
    add_ref(a.data(), b.data(), n, want.data());
    add(pool, a.data(), b.data(), n, got.data());
    EXPECT_EQ(got, want);
    test::poison(want);
    test::poison(got);
    swiglu_ref(a.data(), b.data(), n, want.data());
    swiglu(pool, a.data(), b.data(), n, got.data());
    EXPECT_LT(test::normalized_error(got, want), 1e-6) << n;
    std::vector<float> inplace = a;  // out aliases gate
    swiglu(pool, inplace.data(), b.data(), n, inplace.data());
    EXPECT_EQ(inplace, got);
  }
}

// Embedding rows equal the reference dequantization of each token's row, for every type.
TEST(Elementwise, EmbedRowsEveryType) {
  ThreadPool pool(2);
  const int64_t rows = 37, cols = 512;
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                        GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    uint64_t row_bytes = 0;
    ASSERT_TRUE(row_size(type, cols, &row_bytes));
    const auto values = random_floats(rows * cols, 3);
    std::vector<uint8_t> table(rows * row_bytes);
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(type, values.data() + r * cols, table.data() + r * row_bytes, cols);
    const std::vector<int32_t> tokens = {36, 0, 5, 5, 17};
    std::vector<float> want(tokens.size() * cols), got(want.size()), ref(want.size());
    for (size_t t = 0; t < tokens.size(); ++t)
      dequantize_row(type, table.data() + tokens[t] * row_bytes, want.data() + t * cols, cols);
    test::poison(got);
    test::poison(ref);
    embed_rows(pool, type, table.data(), rows, cols, tokens.data(), tokens.size(), got.data());
    embed_rows_ref(type, table.data(), rows, cols, tokens.data(), tokens.size(), ref.data());
    EXPECT_EQ(got, want) << type_name(static_cast<uint32_t>(type));
    EXPECT_EQ(ref, want) << type_name(static_cast<uint32_t>(type));
  }
}

}  // namespace
}  // namespace lw
