// RMSNorm on the GPU: y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight for n_rows rows of
// dim f32 values (dense rows; y may alias x). One block per row; the sum of squares is
// accumulated in f32 (the CPU reference uses double: normalized error < 1e-6).
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_device.h"

namespace lw::cuda {

void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps,
              float* y, CudaStream stream);

}  // namespace lw::cuda
