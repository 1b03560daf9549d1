// Internal to kernels/cuda (includes cuda_runtime.h; never include it from a public
// header): converts CUDA and cuBLAS statuses into lw::Error LW-BACKEND-002 naming the call,
// the file:line and the runtime's message.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace lw::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* expr, const char* file,
                                   int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file,
                                     int line);

inline void check_cuda(cudaError_t status, const char* expr, const char* file, int line) {
  if (status != cudaSuccess) throw_cuda_error(status, expr, file, line);
}
inline void check_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cublas_error(status, expr, file, line);
}

inline cudaStream_t to_stream(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace lw::cuda

#define LW_CUDA_CHECK(expr) ::lw::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)
#define LW_CUBLAS_CHECK(expr) ::lw::cuda::check_cublas((expr), #expr, __FILE__, __LINE__)
// After a <<<...>>> launch: launch-configuration errors surface here.
#define LW_CUDA_LAUNCH_CHECK(name) \
  ::lw::cuda::check_cuda(cudaGetLastError(), "launch " name, __FILE__, __LINE__)
