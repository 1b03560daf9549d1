#include "kernels/cuda/norm.h"

#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"

namespace lw::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float s = 0.0f;
  if (threadIdx.x < 32) {
    s = threadIdx.x < kThreads / 32 ? scratch[threadIdx.x] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x == 0) scratch[0] = s;
  }
  __syncthreads();
  return scratch[0];
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads)
    rms_norm_kernel(const float* x, const float* w, int64_t dim, float eps, float* y) {
  __shared__ float scratch[kThreads / 32];
  const float* xr = x + blockIdx.x * dim;
  float* yr = y + blockIdx.x * dim;
  float ss = 0.0f;
  if constexpr (kVec) {
    const float4* x4 = reinterpret_cast<const float4*>(xr);
    for (int64_t i = threadIdx.x; i < dim / 4; i += kThreads) {
      const float4 v = x4[i];
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) ss += xr[i] * xr[i];
  }
  const float total = block_sum(ss, scratch);
  const float scale = static_cast<float>(1.0 / sqrt(static_cast<double>(total) / dim + eps));
  if constexpr (kVec) {
    const float4* x4 = reinterpret_cast<const float4*>(xr);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    float4* y4 = reinterpret_cast<float4*>(yr);
    for (int64_t i = threadIdx.x; i < dim / 4; i += kThreads) {
      const float4 v = x4[i], g = w4[i];
      y4[i] = make_float4(v.x * scale * g.x, v.y * scale * g.y, v.z * scale * g.z,
                          v.w * scale * g.w);
    }
  } else {
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) yr[i] = xr[i] * scale * w[i];
  }
}

}  // namespace

void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps,
              float* y, CudaStream stream) {
  LW_CHECK(dim >= 1 && n_rows >= 0, "rms_norm: dim=" + std::to_string(dim));
  if (n_rows == 0) return;
  const bool vec = dim % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(y) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(weight) % 16 == 0;
  const dim3 grid(static_cast<unsigned>(n_rows));
  if (vec) {
    rms_norm_kernel<true><<<grid, kThreads, 0, to_stream(stream)>>>(x, weight, dim, eps, y);
  } else {
    rms_norm_kernel<false><<<grid, kThreads, 0, to_stream(stream)>>>(x, weight, dim, eps, y);
  }
  LW_CUDA_LAUNCH_CHECK("rms_norm_kernel");
}

}  // namespace lw::cuda
