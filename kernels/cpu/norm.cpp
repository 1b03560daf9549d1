#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/simd.h"

namespace lw {

void rms_norm_ref(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps,
                  float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * dim;
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const double scale = 1.0 / std::sqrt(sum / static_cast<double>(dim) + eps);
    float* yr = y + r * dim;
    for (int64_t i = 0; i < dim; ++i) yr[i] = static_cast<float>(xr[i] * scale * weight[i]);
  }
}

namespace {

void norm_row_portable(const float* x, const float* w, int64_t dim, float eps, float* y) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * x[i + j];
  }
  double sum = 0;
  for (int j = 0; j < 8; ++j) sum += acc[j];
  for (; i < dim; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
  for (int64_t k = 0; k < dim; ++k) y[k] = x[k] * scale * w[k];
}

#ifdef LW_CPU_X86
LW_AVX2 void norm_row_avx2(const float* x, const float* w, int64_t dim, float eps, float* y) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i);
    const __m256 b = _mm256_loadu_ps(x + i + 8);
    acc0 = _mm256_fmadd_ps(a, a, acc0);
    acc1 = _mm256_fmadd_ps(b, b, acc1);
  }
  double sum = simd::hsum(_mm256_add_ps(acc0, acc1));
  for (; i < dim; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
  const __m256 vs = _mm256_set1_ps(scale);
  int64_t k = 0;
  for (; k + 8 <= dim; k += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + k), vs);
    _mm256_storeu_ps(y + k, _mm256_mul_ps(v, _mm256_loadu_ps(w + k)));
  }
  for (; k < dim; ++k) y[k] = x[k] * scale * w[k];
}
#endif

}  // namespace

void rms_norm(ThreadPool& pool, CpuIsa isa, const float* x, const float* weight, int64_t n_rows,
              int64_t dim, float eps, float* y) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim));
  pool.parallel_for(n_rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
#ifdef LW_CPU_X86
      if (isa == CpuIsa::Avx2) {
        norm_row_avx2(x + r * dim, weight, dim, eps, y + r * dim);
        continue;
      }
#endif
      norm_row_portable(x + r * dim, weight, dim, eps, y + r * dim);
    }
  });
}

}  // namespace lw
