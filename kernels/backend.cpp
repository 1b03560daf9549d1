#include "kernels/backend.h"

#include <utility>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"

#if defined(LW_HAVE_CUDA) && __has_include("kernels/cuda/cuda_backend.h")
#include "kernels/cuda/cuda_backend.h"
#define LW_CUDA_BACKEND_AVAILABLE 1
#endif

namespace lw {

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = std::exchange(other.owner_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (data_ != nullptr) owner_->free_raw(data_, size_);
  owner_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

DeviceBuffer Backend::alloc(uint64_t bytes) {
  const uint64_t size = bytes == 0 ? 1 : bytes;
  void* data = alloc_raw(size);
  if (data == nullptr) {
    throw Error(ErrorCode::kBackendDevice,
                "backend " + name() + ": allocating " + std::to_string(bytes) + " bytes failed");
  }
  return DeviceBuffer(this, data, size);
}

uint64_t Backend::weight_device_bytes(GgmlType type, int64_t rows, int64_t cols) const {
  uint64_t row_bytes = 0;
  LW_CHECK(rows >= 0 && row_size(type, static_cast<uint64_t>(cols), &row_bytes),
           "weight_device_bytes: " + std::to_string(rows) + " x " + std::to_string(cols));
  return row_bytes * static_cast<uint64_t>(rows);
}

Weight Backend::upload_weight(const DeviceBuffer& buffer, uint64_t offset, GgmlType type,
                              int64_t rows, int64_t cols, const void* src) {
  const uint64_t bytes = weight_device_bytes(type, rows, cols);
  upload(buffer, offset, src, bytes);
  return Weight{type, rows, cols, buffer.as<uint8_t>(offset), bytes};
}

std::unique_ptr<Backend> make_backend(const std::string& name, int device_index, unsigned threads) {
  if (name == "cpu") return std::make_unique<CpuBackend>(threads);
  if (name == "cuda") {
#ifdef LW_CUDA_BACKEND_AVAILABLE
    return make_cuda_backend(device_index);
#else
    (void)device_index;
    throw Error(ErrorCode::kBackendUnavailable,
                "backend \"cuda\" is not available: layerwire was built without CUDA "
                "(configure with -DLW_ENABLE_CUDA=ON on a machine with nvcc)");
#endif
  }
  throw Error(ErrorCode::kBackendUnavailable,
              "unknown backend \"" + name + "\" (known: cpu, cuda)");
}

}  // namespace lw
