#include "kernels/cpu/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/unit/kernels/kernel_test_util.h"

namespace lw {
namespace {

using test::random_floats;

std::vector<int32_t> random_positions(size_t n, uint32_t seed, int32_t max) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, max);
  std::vector<int32_t> p(n);
  for (auto& v : p) v = dist(rng);
  return p;
}

// The GGUF conversion of llama Q/K weights (convert_hf_to_gguf.py `permute`): within each
// head, Hugging Face row j * d/2 + i (j in {0, 1}) becomes GGUF row 2i + j.
std::vector<float> hf_to_gguf(const std::vector<float>& hf, int64_t n_rows, int64_t n_heads,
                              int64_t d) {
  std::vector<float> out(hf.size());
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t i = 0; i < d / 2; ++i)
          out[(r * n_heads + h) * d + 2 * i + j] = hf[(r * n_heads + h) * d + j * d / 2 + i];
  return out;
}

TEST(RopeRef, HandComputedValues) {
  // head_dim 2, position 1: pair 0 rotates by exactly 1 radian whatever theta is.
  float x[2] = {1.0f, 0.0f};
  const int32_t pos[1] = {1};
  rope_ref(x, 1, 2, 1, 2, pos, 10000.0f, RopeMode::AdjacentPair);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-7);
  EXPECT_NEAR(x[1], std::sin(1.0), 1e-7);
  // head_dim 4, theta 100, position 2: pair 1 rotates by 2 * 100^(-1/2) = 0.2 rad.
  float y[4] = {0.0f, 0.0f, 1.0f, 2.0f};  // rotate-half: pair 1 is (y[1], y[3])
  const int32_t pos2[1] = {2};
  rope_ref(y, 1, 4, 1, 4, pos2, 100.0f, RopeMode::RotateHalf);
  // Pair 0 is (y[0], y[2]) = (0, 1) rotated by 2 * 100^0 = 2 rad.
  EXPECT_NEAR(y[0], -std::sin(2.0), 1e-6);
  EXPECT_NEAR(y[2], std::cos(2.0), 1e-6);
  EXPECT_NEAR(y[1], -2 * std::sin(0.2), 1e-6);
  EXPECT_NEAR(y[3], 2 * std::cos(0.2), 1e-6);
}

TEST(Rope, PositionZeroIsIdentity) {
  ThreadPool pool(2);
  for (RopeMode mode : {RopeMode::AdjacentPair, RopeMode::RotateHalf}) {
    const auto x = random_floats(3 * 4 * 16, 7);
    std::vector<float> y = x;
    const std::vector<int32_t> pos(3, 0);
    rope(pool, y.data(), 3, 64, 4, 16, pos.data(), 1e6f, mode);
    EXPECT_EQ(y, x);
  }
}

// Tolerance: the fast version rotates in f32 with f32 cos/sin of double angles; the
// reference rotates in double: normalized error <= 1e-6.
TEST(Rope, FastMatchesReference) {
  ThreadPool pool(3);
  uint32_t seed = 11;
  for (RopeMode mode : {RopeMode::AdjacentPair, RopeMode::RotateHalf}) {
    for (int64_t head_dim : {2, 6, 32, 128}) {
      for (int64_t n_heads : {1, 3, 8}) {
        for (float theta : {10000.0f, 1.0e6f}) {
          const int64_t n_tok = 13, stride = n_heads * head_dim + 5;  // padded rows
          const auto x = random_floats(n_tok * stride, seed++);
          const auto pos = random_positions(n_tok, seed++, 40000);
          std::vector<float> want = x, got = x;
          rope_ref(want.data(), n_tok, stride, n_heads, head_dim, pos.data(), theta, mode);
          rope(pool, got.data(), n_tok, stride, n_heads, head_dim, pos.data(), theta, mode);
          EXPECT_LT(test::normalized_error(got, want), 1e-6)
              << "head_dim " << head_dim << " heads " << n_heads;
          // The padding after each row is untouched.
          for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t i = n_heads * head_dim; i < stride; ++i)
              ASSERT_EQ(got[t * stride + i], x[t * stride + i]);
        }
      }
    }
  }
}

// The two modes are the same math up to the GGUF permutation: rotate-half on Hugging Face
// rows equals adjacent-pair on the same rows permuted the GGUF way, value for value. (Q and
// K get the same permutation, so q.k and with it attention is unchanged too.)
TEST(Rope, RotateHalfEqualsAdjacentPairOnGgufPermutedRows) {
  ThreadPool pool(2);
  for (int64_t head_dim : {2, 8, 128}) {
    const int64_t n_tok = 9, n_heads = 4;
    const auto hf = random_floats(n_tok * n_heads * head_dim, 99 + head_dim);
    const auto pos = random_positions(n_tok, 5, 5000);
    for (bool fast : {false, true}) {
      std::vector<float> a = hf;
      std::vector<float> b = hf_to_gguf(hf, n_tok, n_heads, head_dim);
      auto run = [&](std::vector<float>& v, RopeMode mode) {
        if (fast) {
          rope(pool, v.data(), n_tok, n_heads * head_dim, n_heads, head_dim, pos.data(), 1e4f,
               mode);
        } else {
          rope_ref(v.data(), n_tok, n_heads * head_dim, n_heads, head_dim, pos.data(), 1e4f, mode);
        }
      };
      run(a, RopeMode::RotateHalf);
      run(b, RopeMode::AdjacentPair);
      EXPECT_EQ(hf_to_gguf(a, n_tok, n_heads, head_dim), b) << "head_dim " << head_dim;
      // And the modes differ on unpermuted data (so the check above can fail).
      if (head_dim > 2) {
        std::vector<float> c = hf;
        run(c, RopeMode::AdjacentPair);
        EXPECT_NE(c, a);
      }
    }
  }
}

}  // namespace
}  // namespace lw
