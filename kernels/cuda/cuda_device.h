// CUDA device discovery and the opaque handle types that cross the kernels/cuda boundary.
// Nothing here includes cuda_runtime.h: a stream travels as CudaStream (a cudaStream_t
// cast to void*), so tests, the engine and tools can call launchers without CUDA headers.
// Every function converts a failing CUDA status into lw::Error LW-BACKEND-002 unless it
// says otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lw::cuda {

// A cudaStream_t. nullptr is the legacy default stream.
using CudaStream = void*;

// Number of CUDA devices the runtime can use; 0 (never an exception) when the driver is
// missing, too old, or no device exists. `why`, when given, receives the reason for 0.
int device_count(std::string* why = nullptr);

// True when device_count() > 0. Tests call this and GTEST_SKIP() with "no CUDA device: "
// + *why when it is false.
bool device_available(std::string* why = nullptr);

struct DeviceInfo {
  std::string name;
  int sm_count = 0;           // multiprocessors
  int cc_major = 0;           // compute capability
  int cc_minor = 0;
  size_t total_memory = 0;    // bytes
  size_t smem_per_block_optin = 0;  // bytes a block may use after opting in
  size_t l2_bytes = 0;
};

// Properties of `device` (LW-BACKEND-002 when the query fails).
DeviceInfo device_info(int device);

// Selects `device` for the calling thread.
void set_device(int device);

// Plain device memory, for tests and the backend. dev_alloc returns nullptr for 0 bytes.
void* dev_alloc(size_t bytes);
void dev_free(void* p) noexcept;
// Synchronous copies on the legacy default stream (tests; the backend uses its stream).
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
// Fills `bytes` bytes at dst with `byte` (poisoning outputs before a kernel runs); returns
// when the fill is done (it is then visible to work on every stream).
void dev_fill_bytes(void* dst, int byte, size_t bytes);
// Waits for all work on the device; throws LW-BACKEND-002 naming `what` on a sticky error.
void device_synchronize(const char* what = "device_synchronize");

// Streams owned by the caller.
CudaStream stream_create();
void stream_destroy(CudaStream s) noexcept;
void stream_synchronize(CudaStream s, const char* what = "stream_synchronize");

// A device buffer that frees itself (tests and tools).
class GpuBuffer {
 public:
  GpuBuffer() = default;
  explicit GpuBuffer(size_t bytes) : ptr_(dev_alloc(bytes)), bytes_(bytes) {}
  ~GpuBuffer() { dev_free(ptr_); }
  GpuBuffer(const GpuBuffer&) = delete;
  GpuBuffer& operator=(const GpuBuffer&) = delete;
  GpuBuffer(GpuBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  GpuBuffer& operator=(GpuBuffer&& o) noexcept {
    if (this != &o) {
      dev_free(ptr_);
      ptr_ = o.ptr_;
      bytes_ = o.bytes_;
      o.ptr_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t size() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace lw::cuda
