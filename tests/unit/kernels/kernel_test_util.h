// Helpers for the kernel tests: seeded random data, NaN poisoning of outputs, the
// normalized error used to compare a fast op with its reference, and the ISAs to run.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"

namespace lw::test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline void poison(std::vector<float>& v) {
  std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN());
}

// sqrt(sum (a - b)^2 / sum b^2); infinity when sizes differ or any value is not finite.
inline double normalized_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i]))
      return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= m)) m = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
  }
  return m;
}

// Both ISAs; the AVX2 one skips (visibly) on CPUs without it.
inline std::vector<CpuIsa> all_isas() { return {CpuIsa::Portable, CpuIsa::Avx2}; }
inline std::string isa_test_name(const testing::TestParamInfo<CpuIsa>& info) {
  return cpu_isa_name(info.param);
}
#define LW_SKIP_IF_ISA_MISSING(isa)                                                  \
  do {                                                                               \
    if ((isa) == ::lw::CpuIsa::Avx2 && ::lw::cpu_detect_isa() != ::lw::CpuIsa::Avx2) \
      GTEST_SKIP() << "this CPU has no AVX2/FMA/F16C";                               \
  } while (0)

}  // namespace lw::test
