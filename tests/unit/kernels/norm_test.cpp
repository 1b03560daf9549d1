#include "kernels/cpu/norm.h"

#include <gtest/gtest.h>

#include "tests/unit/kernels/kernel_test_util.h"

namespace lw {
namespace {

using test::normalized_error;
using test::random_floats;

TEST(RmsNormRef, HandComputedValue) {
  // x = [3, 4]: mean square 12.5, rms 3.5355339; weight [1, 2].
  const float x[2] = {3, 4}, w[2] = {1, 2};
  float y[2] = {NAN, NAN};
  rms_norm_ref(x, w, 1, 2, 0.0f, y);
  EXPECT_NEAR(y[0], 3 / 3.5355339, 1e-6);
  EXPECT_NEAR(y[1], 2 * 4 / 3.5355339, 1e-6);
}

class RmsNormTest : public testing::TestWithParam<CpuIsa> {};

// Tolerance: normalized error 1e-6 (f32 accumulation over <= 4099 values vs double).
TEST_P(RmsNormTest, MatchesReferenceOnOddSizes) {
  LW_SKIP_IF_ISA_MISSING(GetParam());
  ThreadPool pool(3);
  uint32_t seed = 1;
  for (int64_t dim : {1, 7, 16, 64, 255, 4099}) {
    for (int64_t rows : {1, 3, 17}) {
      const auto x = random_floats(rows * dim, seed++, 2.0f);
      const auto w = random_floats(dim, seed++);
      std::vector<float> want(x.size()), got(x.size());
      test::poison(want);
      test::poison(got);
      rms_norm_ref(x.data(), w.data(), rows, dim, 1e-5f, want.data());
      rms_norm(pool, GetParam(), x.data(), w.data(), rows, dim, 1e-5f, got.data());
      EXPECT_LT(normalized_error(got, want), 1e-6) << "dim " << dim << " rows " << rows;
      // In place (y aliases x) gives the same.
      std::vector<float> inplace = x;
      rms_norm(pool, GetParam(), inplace.data(), w.data(), rows, dim, 1e-5f, inplace.data());
      EXPECT_EQ(inplace, got) << "dim " << dim << " rows " << rows;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, RmsNormTest, testing::ValuesIn(test::all_isas()),
                         test::isa_test_name);

}  // namespace
}  // namespace lw
