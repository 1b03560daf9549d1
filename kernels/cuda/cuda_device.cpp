#include "kernels/cuda/cuda_device.h"

#include <cuda_runtime.h>

#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"

namespace lw::cuda {

void throw_cuda_error(cudaError_t status, const char* expr, const char* file, int line) {
  throw Error(ErrorCode::kBackendDevice, std::string(file) + ":" + std::to_string(line) + ": " +
                                             expr + " failed: " + cudaGetErrorName(status) +
                                             " (" + cudaGetErrorString(status) + ")");
}

void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line) {
  throw Error(ErrorCode::kBackendDevice, std::string(file) + ":" + std::to_string(line) + ": " +
                                             expr + " failed: cuBLAS status " +
                                             std::to_string(static_cast<int>(status)));
}

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess) {
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(st) + " (" +
                    cudaGetErrorString(st) + ")";
    cudaGetLastError();  // clear the non-sticky error
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount reported 0 devices";
  return n;
}

bool device_available(std::string* why) { return device_count(why) > 0; }

DeviceInfo device_info(int device) {
  cudaDeviceProp p{};
  LW_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  DeviceInfo info;
  info.name = p.name;
  info.sm_count = p.multiProcessorCount;
  info.cc_major = p.major;
  info.cc_minor = p.minor;
  info.total_memory = p.totalGlobalMem;
  info.smem_per_block_optin = p.sharedMemPerBlockOptin;
  info.l2_bytes = static_cast<size_t>(p.l2CacheSize);
  return info;
}

void set_device(int device) { LW_CUDA_CHECK(cudaSetDevice(device)); }

void* dev_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t st = cudaMalloc(&p, bytes);
  if (st != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::kBackendDevice, "cudaMalloc of " + std::to_string(bytes) +
                                               " bytes failed: " + cudaGetErrorString(st));
  }
  return p;
}

void dev_free(void* p) noexcept {
  if (p != nullptr) cudaFree(p);
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  LW_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  LW_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void dev_fill_bytes(void* dst, int byte, size_t bytes) {
  if (bytes == 0) return;
  LW_CUDA_CHECK(cudaMemset(dst, byte, bytes));
  // cudaMemset runs on the legacy stream, which does not order work on non-blocking
  // streams (the backend's): wait so every later launch sees the filled bytes.
  LW_CUDA_CHECK(cudaDeviceSynchronize());
}

void device_synchronize(const char* what) {
  const cudaError_t st = cudaDeviceSynchronize();
  if (st != cudaSuccess) throw_cuda_error(st, what, __FILE__, __LINE__);
}

CudaStream stream_create() {
  cudaStream_t s = nullptr;
  LW_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void stream_destroy(CudaStream s) noexcept {
  if (s != nullptr) cudaStreamDestroy(to_stream(s));
}

void stream_synchronize(CudaStream s, const char* what) {
  const cudaError_t st = cudaStreamSynchronize(to_stream(s));
  if (st != cudaSuccess) throw_cuda_error(st, what, __FILE__, __LINE__);
}

}  // namespace lw::cuda
