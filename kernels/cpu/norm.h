// RMSNorm on f32 rows: y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight. rms_norm_ref is the
// scalar reference (accumulates in double) kept for tests; rms_norm is the fast version,
// multithreaded over rows and vectorized with AVX2 when isa says so. y may alias x.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/thread_pool.h"

namespace lw {

void rms_norm_ref(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps,
                  float* y);
void rms_norm(ThreadPool& pool, CpuIsa isa, const float* x, const float* weight, int64_t n_rows,
              int64_t dim, float eps, float* y);

}  // namespace lw
