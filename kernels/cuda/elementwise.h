// Element-wise ops on f32 vectors on the GPU: y = a + b and out = silu(gate) * up with
// silu(g) = g / (1 + e^-g) (f32 expf: relative error < 1e-6 against the double reference).
// Outputs may alias inputs element for element.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_device.h"

namespace lw::cuda {

void add(const float* a, const float* b, int64_t n, float* y, CudaStream stream);
void swiglu(const float* gate, const float* up, int64_t n, float* out, CudaStream stream);

}  // namespace lw::cuda
