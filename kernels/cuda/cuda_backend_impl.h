// Internal to kernels/cuda: the CudaBackend class behind make_cuda_backend(). Split over
// cuda_backend.cpp (device, memory, copies, op recording, graphs) and cuda_backend_ops.cpp
// (fusion of a recorded segment into launches). Holds CUDA handles as void* so this header
// needs no CUDA include.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_device.h"

namespace lw::cuda_impl {

// One recorded op, arguments by value (pointers are device addresses).
struct PendingOp {
  enum class Kind : uint8_t {
    kMatmul,
    kRmsNorm,
    kRope,
    kAdd,
    kSwiglu,
    kEmbed,
    kKvWrite,
    kAttention,
    kCopy
  };
  Kind kind = Kind::kCopy;
  Weight w;                       // matmul, embed
  const float* in0 = nullptr;     // matmul x, add a, swiglu gate, norm x, attention q, kv k
  const float* in1 = nullptr;     // add b, swiglu up, norm weight, kv v
  float* out = nullptr;           // y / out; rope: the tensor rotated in place
  int64_t n = 0;                  // tokens (matmul, embed, rope), rows (norm), floats (add,
                                  // swiglu), bytes (copy), query heads (attention)
  int64_t i1 = 0;                 // norm dim, rope row stride
  int64_t i2 = 0;                 // rope heads
  int64_t i3 = 0;                 // rope head_dim
  float f = 0.0f;                 // eps, theta, scale
  RopeMode mode = RopeMode::AdjacentPair;
  const int32_t* ids = nullptr;   // rope positions, embed tokens
  const void* src = nullptr;      // copy source
  KvLayerView kv;                 // kv_write, attention
  AttentionBatch batch;           // kv_write, attention
  int32_t max_pos_bucket = 0;     // attention: planning bound for max_position

  void append_key(std::vector<uint64_t>* key) const;
};

// A launch (or a few) after fusion, with the workspace it needs.
struct Launch {
  size_t gemv_ws = 0;
  size_t attn_ws = 0;
  size_t gemm_ws = 0;
  size_t act_ws = 0;  // quantized activations of the int8 GEMV
  std::function<void()> run;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  std::string description() const override;

  void upload(const DeviceBuffer& buffer, uint64_t offset, const void* src,
              uint64_t bytes) override;
  void download(const DeviceBuffer& buffer, uint64_t offset, void* dst,
                uint64_t bytes) override;
  void copy(const void* src, void* dst, uint64_t bytes) override;
  void synchronize() override;
  bool supports(GgmlType type) const override;
  Weight upload_weight(const DeviceBuffer& buffer, uint64_t offset, GgmlType type, int64_t rows,
                       int64_t cols, const void* src) override;

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

  // Counters for tests and bench: segments run eagerly, captured, replayed.
  struct Stats {
    uint64_t eager = 0, captured = 0, replayed = 0, launches = 0;
  };
  Stats stats() const { return stats_; }

 protected:
  void* alloc_raw(uint64_t bytes) override;
  void free_raw(void* data, uint64_t bytes) override;

 private:
  // Fusion (cuda_backend_ops.cpp): turns the recorded ops into launches.
  std::vector<Launch> plan_launches(const std::vector<PendingOp>& ops);
  // Most tokens a matmul of this type and width runs on the int8 GEMV (0: never).
  int64_t int8_token_limit(GgmlType type, int64_t k) const;
  void add_matmul_group(const std::vector<const PendingOp*>& mats, const PendingOp* add_op,
                        const PendingOp* swiglu_op, const PendingOp* norm_op,
                        std::vector<Launch>* out);
  void add_single(const PendingOp& op, std::vector<Launch>* out);

  // Runs the recorded segment (eagerly, by capture, or by replay) and clears it.
  void flush();
  void ensure_workspaces(const std::vector<Launch>& launches);
  void clear_graphs();
  void record(const PendingOp& op);
  void check_range(const DeviceBuffer& buffer, uint64_t offset, uint64_t bytes,
                   const char* what) const;
  void copy_host_to_device(void* dst, const void* src, uint64_t bytes);

  CudaBackendOptions options_;
  cuda::DeviceInfo info_;
  void* stream_ = nullptr;   // cudaStream_t
  void* cublas_ = nullptr;   // cublasHandle_t
  static constexpr uint64_t kStagingBytes = 32ull << 20;
  void* staging_[2] = {nullptr, nullptr};  // pinned host buffers
  void* staging_done_[2] = {nullptr, nullptr};  // cudaEvent_t: the copy out of staging_[i]
  cuda::GpuBuffer cublas_ws_;
  cuda::GpuBuffer gemv_ws_;
  cuda::GpuBuffer attn_ws_;
  cuda::GpuBuffer gemm_ws_;
  cuda::GpuBuffer act_ws_;

  std::vector<PendingOp> pending_;
  struct Graph {
    std::vector<uint64_t> key;
    void* exec = nullptr;  // cudaGraphExec_t
    uint64_t last_use = 0;
  };
  std::vector<Graph> graphs_;
  // Keys of recent segments run eagerly (a decode step alternates between a few segments:
  // the head's embed, the layers, ...); a key seen again is captured.
  std::vector<std::vector<uint64_t>> missed_keys_;
  uint64_t flush_count_ = 0;
  Stats stats_;
};

}  // namespace lw::cuda_impl
