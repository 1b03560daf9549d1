// The CPU backend: Backend over host memory. Ops run synchronously on the calling thread
// plus the backend's own ThreadPool (sized to the cores unless told), using the fast
// kernels of kernels/cpu/ with the ISA detected at construction (AVX2/FMA/F16C or
// portable). Buffers are 64-byte aligned host memory; large ones are 2 MiB aligned and
// advised for transparent huge pages, which helps the weight-streaming matmuls.
#pragma once

#include <memory>
#include <string>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/thread_pool.h"

namespace lw {

class CpuBackend : public Backend {
 public:
  // threads = 0: one per core. isa defaults to the best this CPU has; tests force Portable.
  explicit CpuBackend(unsigned threads = 0);
  CpuBackend(unsigned threads, CpuIsa isa);

  std::string name() const override { return "cpu"; }
  std::string description() const override;
  ThreadPool& pool() { return pool_; }
  CpuIsa isa() const { return isa_; }

  void upload(const DeviceBuffer& buffer, uint64_t offset, const void* src,
              uint64_t bytes) override;
  void download(const DeviceBuffer& buffer, uint64_t offset, void* dst, uint64_t bytes) override;
  void copy(const void* src, void* dst, uint64_t bytes) override;
  void synchronize() override {}
  bool supports(GgmlType type) const override;

  void matmul(const Weight& w, const float* x, int64_t n_tok, float* y) override;
  void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps,
                float* y) override;
  void rope(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
            const int32_t* positions, float theta, RopeMode mode) override;
  void add(const float* a, const float* b, int64_t n, float* y) override;
  void swiglu(const float* gate, const float* up, int64_t n, float* out) override;
  void embed(const Weight& table, const int32_t* tokens, int64_t n_tok, float* out) override;
  void kv_write(const KvLayerView& kv, const AttentionBatch& batch, const float* k,
                const float* v) override;
  void attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                 int64_t n_heads, float scale, float* out) override;

 protected:
  void* alloc_raw(uint64_t bytes) override;
  void free_raw(void* data, uint64_t bytes) override;

 private:
  ThreadPool pool_;
  CpuIsa isa_;
};

}  // namespace lw
