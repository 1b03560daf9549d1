#include "kernels/cuda/elementwise.h"

#include "kernels/cuda/cuda_check.h"

namespace lw::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i < n) y[i] = a[i] + b[i];
}

__global__ void add4_kernel(const float4* a, const float4* b, int64_t n4, float4* y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i < n4) {
    const float4 u = a[i], v = b[i];
    y[i] = make_float4(u.x + v.x, u.y + v.y, u.z + v.z, u.w + v.w);
  }
}

__global__ void swiglu_kernel(const float* g, const float* u, int64_t n, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i < n) out[i] = silu_mul(g[i], u[i]);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

void add(const float* a, const float* b, int64_t n, float* y, CudaStream stream) {
  if (n <= 0) return;
  if (n % 4 == 0 && aligned16(a) && aligned16(b) && aligned16(y)) {
    add4_kernel<<<blocks_for(n / 4), kThreads, 0, to_stream(stream)>>>(
        reinterpret_cast<const float4*>(a), reinterpret_cast<const float4*>(b), n / 4,
        reinterpret_cast<float4*>(y));
  } else {
    add_kernel<<<blocks_for(n), kThreads, 0, to_stream(stream)>>>(a, b, n, y);
  }
  LW_CUDA_LAUNCH_CHECK("add_kernel");
}

void swiglu(const float* gate, const float* up, int64_t n, float* out, CudaStream stream) {
  if (n <= 0) return;
  swiglu_kernel<<<blocks_for(n), kThreads, 0, to_stream(stream)>>>(gate, up, n, out);
  LW_CUDA_LAUNCH_CHECK("swiglu_kernel");
}

}  // namespace lw::cuda
