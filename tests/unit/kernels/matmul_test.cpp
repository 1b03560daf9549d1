#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/half.h"

namespace lw {
namespace {

constexpr float kPoison = std::numeric_limits<float>::quiet_NaN();

struct Matrix {
  std::vector<uint8_t> bytes;
  size_t row_bytes = 0;
};

// rows x k gaussian weights quantized with the reference quantizer.
Matrix make_weights(GgmlType type, int64_t rows, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(k));
  Matrix m;
  uint64_t rb = 0;
  EXPECT_TRUE(row_size(type, static_cast<uint64_t>(k), &rb));
  m.row_bytes = rb;
  m.bytes.resize(m.row_bytes * rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng);
    quantize_row(type, row.data(), m.bytes.data() + r * m.row_bytes, k);
  }
  return m;
}

std::vector<float> make_acts(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(rng);
  return x;
}

double normalized_error(const std::vector<float>& y, const std::vector<float>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    err += (double(y[i]) - ref[i]) * (double(y[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return std::sqrt(err / std::max(norm, 1e-30));
}

// ||y - ref|| over the typical size of the outputs, sqrt(sum_rt |w_r|^2 |x_t|^2 / k): unlike
// ||ref||, this does not shrink when a small output happens to land near zero.
double scaled_error(const std::vector<float>& y, const std::vector<float>& ref, GgmlType type,
                    const Matrix& w, int64_t rows, int64_t k, const std::vector<float>& x,
                    int64_t n_tok) {
  std::vector<float> row(static_cast<size_t>(k));
  double w2 = 0, x2 = 0, err = 0;
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, w.bytes.data() + r * w.row_bytes, row.data(), k);
    for (float v : row) w2 += double(v) * v;
  }
  for (int64_t i = 0; i < n_tok * k; ++i) x2 += double(x[i]) * x[i];
  for (size_t i = 0; i < y.size(); ++i) err += (double(y[i]) - ref[i]) * (double(y[i]) - ref[i]);
  return std::sqrt(err / (w2 * x2 / static_cast<double>(k)));
}

// Bounds on scaled_error. The quantized formats multiply against activations rounded to
// 8 bits (per 256 values for the K-quants, per 32 for Q8_0); on gaussian data the worst case
// measured over the whole grid below (a single output, rows=1 n_tok=1) was 0.0098 (K-quants)
// and 0.0065 (Q8_0); bounds are 1.5x. Float weights differ from the double-accumulated
// reference only by f32 rounding (measured at most 4.1e-7).
double error_bound(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return 0.015;
    case GgmlType::Q8_0:
      return 0.010;
    default:
      return 1e-6;
  }
}

using MatmulFn = void (*)(ThreadPool&, GgmlType, const void*, int64_t, int64_t, const float*,
                          int64_t, float*);

std::vector<float> run_poisoned(MatmulFn fn, ThreadPool& pool, GgmlType type, const Matrix& w,
                                int64_t rows, int64_t k, const std::vector<float>& x,
                                int64_t n_tok) {
  std::vector<float> y(static_cast<size_t>(rows * n_tok), kPoison);
  fn(pool, type, w.bytes.data(), rows, k, x.data(), n_tok, y.data());
  return y;
}

class MatmulFormatTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulFormatTest, MatchesReferenceOnOddShapes) {
  const GgmlType type = GetParam();
  ThreadPool pool(2);
  ThreadPool pool3(3);
  double worst = 0;
  for (int64_t k : {256, 512, 1280}) {
    const Matrix w = make_weights(type, 257, k, 1000 + static_cast<uint32_t>(k));
    const std::vector<float> x = make_acts(17 * k, 7 + static_cast<uint32_t>(k));
    for (int64_t rows : {1, 7, 33, 257}) {
      for (int64_t n_tok : {1, 3, 8, 17}) {
        SCOPED_TRACE("rows=" + std::to_string(rows) + " k=" + std::to_string(k) +
                     " n_tok=" + std::to_string(n_tok));
        std::vector<float> ref(static_cast<size_t>(rows * n_tok), kPoison);
        matmul_ref(type, w.bytes.data(), rows, k, x.data(), n_tok, ref.data());
        ThreadPool& p = (rows + n_tok) % 2 ? pool3 : pool;
        const std::vector<float> fast = run_poisoned(matmul, p, type, w, rows, k, x, n_tok);
        const std::vector<float> port =
            run_poisoned(matmul_portable, p, type, w, rows, k, x, n_tok);
        for (size_t i = 0; i < ref.size(); ++i) {
          ASSERT_TRUE(std::isfinite(ref[i])) << i;
          ASSERT_TRUE(std::isfinite(fast[i])) << "matmul left y[" << i << "] unwritten";
          ASSERT_TRUE(std::isfinite(port[i])) << "matmul_portable left y[" << i << "] unwritten";
        }
        const double e_fast = scaled_error(fast, ref, type, w, rows, k, x, n_tok);
        const double e_port = scaled_error(port, ref, type, w, rows, k, x, n_tok);
        EXPECT_LT(e_fast, error_bound(type));
        EXPECT_LT(e_port, error_bound(type));
        // Both paths compute the same integer sums; only f32 summation order differs.
        EXPECT_LT(normalized_error(fast, port), 1e-5);
        worst = std::max({worst, e_fast, e_port});
      }
    }
  }
  EXPECT_GT(worst, 0.0);  // the comparison saw real outputs
}

// Activations that are integers in [-127, 127] with 127 in every 32-value block are exact
// on the 8-bit grid, so the integer kernels must then match the reference to f32 rounding:
// this isolates the weight decoding (scales, mins, high bits) from activation rounding.
TEST_P(MatmulFormatTest, ExactOnEightBitActivations) {
  const GgmlType type = GetParam();
  ThreadPool pool(2);
  const int64_t rows = 33, k = 1280;
  const Matrix w = make_weights(type, rows, k, 77);
  for (int64_t n_tok : {1, 5}) {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> dist(-127, 127);
    std::vector<float> x(static_cast<size_t>(n_tok * k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = i % 32 == 0 ? 127.0f : float(dist(rng));
    std::vector<float> ref(static_cast<size_t>(rows * n_tok), kPoison);
    matmul_ref(type, w.bytes.data(), rows, k, x.data(), n_tok, ref.data());
    for (MatmulFn fn : {&matmul, &matmul_portable}) {
      const std::vector<float> y = run_poisoned(fn, pool, type, w, rows, k, x, n_tok);
      EXPECT_LT(normalized_error(y, ref), 2e-6) << "n_tok=" << n_tok;
    }
  }
}

// A long k makes the fast path split the tokens into several L2-sized tiles (K-quants: 8
// tokens per tile at k=14336, Q8_0: 16, floats: 4) and the rows into several groups.
TEST_P(MatmulFormatTest, LongRowsUseSeveralTokenTiles) {
  const GgmlType type = GetParam();
  ThreadPool pool(2);
  const int64_t rows = 37, k = 14336, n_tok = 19;
  const Matrix w = make_weights(type, rows, k, 11);
  const std::vector<float> x = make_acts(n_tok * k, 12);
  std::vector<float> ref(static_cast<size_t>(rows * n_tok), kPoison);
  matmul_ref(type, w.bytes.data(), rows, k, x.data(), n_tok, ref.data());
  for (MatmulFn fn : {&matmul, &matmul_portable}) {
    const std::vector<float> y = run_poisoned(fn, pool, type, w, rows, k, x, n_tok);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_TRUE(std::isfinite(y[i])) << i;
    EXPECT_LT(scaled_error(y, ref, type, w, rows, k, x, n_tok), error_bound(type));
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, MatmulFormatTest,
                         ::testing::Values(GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                                           GgmlType::Q8_0, GgmlType::F16, GgmlType::BF16,
                                           GgmlType::F32),
                         [](const auto& info) {
                           return std::string(type_traits(info.param).name);
                         });

TEST(MatmulTest, FloatFormatsWithOddK) {
  // Float weights have block size 1: k need not be a multiple of 8 (vector tails).
  ThreadPool pool(2);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    for (int64_t k : {1, 7, 13, 100}) {
      const Matrix w = make_weights(type, 9, k, 5);
      const std::vector<float> x = make_acts(5 * k, 6);
      std::vector<float> ref(9 * 5, kPoison);
      matmul_ref(type, w.bytes.data(), 9, k, x.data(), 5, ref.data());
      for (MatmulFn fn : {&matmul, &matmul_portable}) {
        const std::vector<float> y = run_poisoned(fn, pool, type, w, 9, k, x, 5);
        EXPECT_LT(normalized_error(y, ref), 1e-6) << type_traits(type).name << " k=" << k;
      }
    }
  }
}

TEST(MatmulTest, Q8_0ExtremeWeightsAndZeroActivations) {
  // A hand-built Q8_0 row holding -128 and 127 (the abs/sign trick of the vector path must
  // treat |-128| as 128), against x = 1 everywhere: y = d * sum(q) exactly.
  std::vector<BlockQ8_0> w(2);
  w[0].d = 0x3C00;  // 1.0
  w[1].d = 0x3800;  // 0.5
  int expected2 = 0;
  for (int i = 0; i < 32; ++i) {
    w[0].qs[i] = static_cast<int8_t>(i % 2 ? -128 : 127);  // sum = 16 * -1 = -16
    w[1].qs[i] = static_cast<int8_t>(-128 + 8 * i);
    expected2 += -128 + 8 * i;
  }
  const std::vector<float> ones(64, 1.0f);
  ThreadPool pool(1);
  for (MatmulFn fn : {&matmul, &matmul_portable}) {
    std::vector<float> y(1, kPoison);
    fn(pool, GgmlType::Q8_0, w.data(), 1, 64, ones.data(), 1, y.data());
    EXPECT_FLOAT_EQ(y[0], -16.0f + 0.5f * static_cast<float>(expected2));
    // All-zero activations give exactly zero (the zero-scale path of the 8-bit quantizer).
    const std::vector<float> zeros(64 * 2, 0.0f);
    std::vector<float> y2(2, kPoison);
    fn(pool, GgmlType::Q8_0, w.data(), 1, 64, zeros.data(), 2, y2.data());
    EXPECT_EQ(y2[0], 0.0f);
    EXPECT_EQ(y2[1], 0.0f);
  }
  const Matrix wk = make_weights(GgmlType::Q6_K, 3, 256, 9);
  const std::vector<float> zeros(256, 0.0f);
  for (MatmulFn fn : {&matmul, &matmul_portable}) {
    std::vector<float> y(3, kPoison);
    fn(pool, GgmlType::Q6_K, wk.bytes.data(), 3, 256, zeros.data(), 1, y.data());
    EXPECT_EQ(y, std::vector<float>(3, 0.0f));
  }
}

TEST(MatmulTest, RejectsBadShapesAndTypes) {
  ThreadPool pool(2);
  std::vector<uint8_t> w(4096);
  std::vector<float> x(1024), y(16);
  try {
    matmul(pool, GgmlType::Q4_K, w.data(), 2, 300, x.data(), 1, y.data());
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kQuantSize);
  }
  EXPECT_THROW(matmul_portable(pool, GgmlType::Q8_0, w.data(), 2, 40, x.data(), 1, y.data()),
               Error);
  EXPECT_THROW(matmul_ref(GgmlType::Q6_K, w.data(), 2, 100, x.data(), 1, y.data()), Error);
  try {
    matmul(pool, GgmlType::Q4_0, w.data(), 2, 64, x.data(), 1, y.data());
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kGgufTensorType);
  }
  // k = 0: every output is an empty sum.
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16}) {
    for (MatmulFn fn : {&matmul, &matmul_portable}) {
      std::vector<float> y0(6, kPoison);
      fn(pool, type, w.data(), 3, 0, x.data(), 2, y0.data());
      EXPECT_EQ(y0, std::vector<float>(6, 0.0f)) << type_traits(type).name;
    }
  }
  // Empty products write nothing.
  std::vector<float> untouched(4, kPoison);
  matmul(pool, GgmlType::F32, w.data(), 0, 8, x.data(), 2, untouched.data());
  matmul(pool, GgmlType::F32, w.data(), 2, 8, x.data(), 0, untouched.data());
  for (float v : untouched) EXPECT_TRUE(std::isnan(v));
}

TEST(MatmulTest, ReportsVectorPath) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(matmul_has_avx2(), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                   __builtin_cpu_supports("f16c"));
#else
  EXPECT_FALSE(matmul_has_avx2());
#endif
}

}  // namespace
}  // namespace lw
