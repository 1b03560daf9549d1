// The compute backend interface the engine runs on: device memory (alloc / free, upload /
// download of byte ranges) and the ops of a llama block on f32 activations, in the style of
// a ggml backend. Implementations: kernels/cpu/cpu_backend.h ("cpu"), and a CUDA backend
// (kernels/cuda/, "cuda") that provides make_cuda_backend() in kernels/cuda/cuda_backend.h.
//
// Contracts shared by every op:
//  - Pointers passed to ops are device addresses inside DeviceBuffers of THIS backend (host
//    addresses for the CPU backend). Activations are f32, row-major, dense (row stride =
//    row length) unless a stride is given.
//  - Ops are enqueued in call order on one stream; synchronize() waits for all of them.
//    upload() and download() are ordered with the ops and complete before they return
//    (download waits for the ops before it). The CPU backend runs everything at once.
//  - Ops never allocate and never throw for valid arguments; argument sizes are checked by
//    the engine (bad input -> lw::Error there); an op given inconsistent sizes is a bug.
//  - A Backend is used by one thread at a time (the device's compute thread). Buffers and
//    weights must not outlive their backend.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fragments/quant.h"
#include "kernels/op_types.h"

namespace lw {

class Backend;

// Owns `size` bytes of device memory (freed on destruction). Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  uint64_t size() const { return size_; }
  template <typename T>
  T* as(uint64_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(data_) + byte_offset);
  }
  explicit operator bool() const { return data_ != nullptr; }
  void reset();

 private:
  friend class Backend;
  DeviceBuffer(Backend* owner, void* data, uint64_t size)
      : owner_(owner), data_(data), size_(size) {}
  Backend* owner_ = nullptr;
  void* data_ = nullptr;
  uint64_t size_ = 0;
};

// A weight matrix in its stored (possibly quantized) encoding: `rows` rows of `cols` values
// (cols = GGUF ne[0], the input features) at device address `data`, in the backend's device
// layout of that encoding (made by upload_weight; the CPU backend keeps the GGUF rows of
// row_size(type, cols) bytes as they are). No dequantized copy exists; ops decode blocks on
// the fly.
struct Weight {
  GgmlType type = GgmlType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  uint64_t bytes = 0;  // as stored: rows * row_size(type, cols)
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;         // "cpu", "cuda"
  virtual std::string description() const = 0;  // device and options, for logs and bench

  // ---- memory ----
  // Device memory of `bytes` bytes, aligned to at least 256 bytes. Throws LW-BACKEND-002
  // when the device has no room.
  DeviceBuffer alloc(uint64_t bytes);
  // Host -> device / device -> host copies of a byte range of `buffer` (range checked).
  virtual void upload(const DeviceBuffer& buffer, uint64_t offset, const void* src,
                      uint64_t bytes) = 0;
  virtual void download(const DeviceBuffer& buffer, uint64_t offset, void* dst, uint64_t bytes) = 0;
  // Device -> device copy of `bytes` bytes.
  virtual void copy(const void* src, void* dst, uint64_t bytes) = 0;
  // Waits until every enqueued op has completed.
  virtual void synchronize() = 0;
  // Whether matmul/embed accept weights of this type.
  virtual bool supports(GgmlType type) const = 0;
  // Device bytes of a weight of this type and shape in the backend's layout. The default is
  // the stored size rows * row_size(type, cols).
  virtual uint64_t weight_device_bytes(GgmlType type, int64_t rows, int64_t cols) const;
  // Uploads a weight from its stored bytes (`rows` GGUF rows, rows * row_size(type, cols)
  // bytes at host address src) to `buffer` at `offset` (a multiple of 256, with
  // weight_device_bytes() of room), converting to the backend's device layout if it has one
  // (a backend may repack blocks, e.g. for alignment). The default copies the bytes as they
  // are. Returns the handle ops take.
  virtual Weight upload_weight(const DeviceBuffer& buffer, uint64_t offset, GgmlType type,
                               int64_t rows, int64_t cols, const void* src);

  // ---- ops ----
  // y[t][r] = sum_k W[r][k] * x[t][k]; x: n_tok x w.cols, y: n_tok x w.rows. y must not
  // alias x.
  virtual void matmul(const Weight& w, const float* x, int64_t n_tok, float* y) = 0;
  // y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, for n_rows rows of dim; y may alias x.
  virtual void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim, float eps,
                        float* y) = 0;
  // In place on x: n_tok rows with stride row_stride (floats), each holding n_heads heads of
  // head_dim values (head_dim even); token t rotated for position positions[t] (device
  // int32[n_tok]); see RopeMode for the pairing.
  virtual void rope(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                    const int32_t* positions, float theta, RopeMode mode) = 0;
  // y = a + b over n floats; y may alias a or b.
  virtual void add(const float* a, const float* b, int64_t n, float* y) = 0;
  // out = silu(gate) * up over n floats (silu(g) = g / (1 + e^-g)); out may alias either.
  virtual void swiglu(const float* gate, const float* up, int64_t n, float* out) = 0;
  // out[t] = dequantized row tokens[t] of `table` (tokens: device int32[n_tok], each in
  // [0, table.rows), checked by the caller); out: n_tok x table.cols.
  virtual void embed(const Weight& table, const int32_t* tokens, int64_t n_tok, float* out) = 0;
  // Stores K and V of every batch token into the cache as f16 (round to nearest even):
  // k, v: n_tokens x (n_kv_heads * head_dim).
  virtual void kv_write(const KvLayerView& kv, const AttentionBatch& batch, const float* k,
                        const float* v) = 0;
  // Causal grouped-query attention over the cache: q: n_tokens x (n_heads * head_dim),
  // out: same shape; query head h reads KV head h / (n_heads / n_kv_heads); scores scaled by
  // `scale`, softmax in f32 over positions 0..positions[t]. out must not alias q.
  virtual void attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                         int64_t n_heads, float scale, float* out) = 0;

 protected:
  // Raw device allocation for alloc(); nullptr when out of memory.
  virtual void* alloc_raw(uint64_t bytes) = 0;
  virtual void free_raw(void* data, uint64_t bytes) = 0;
  friend class DeviceBuffer;
};

// Creates a backend by name: "cpu" (device_index ignored; threads = 0 means one per core)
// or "cuda" (threads ignored). Throws LW-BACKEND-001 for an unknown name, for "cuda" when
// layerwire was built without CUDA, or when the device does not exist.
std::unique_ptr<Backend> make_backend(const std::string& name, int device_index = 0,
                                      unsigned threads = 0);

}  // namespace lw
