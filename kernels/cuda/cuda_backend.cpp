#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/weight_layout.h"

namespace lw {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long parsed = std::strtol(v, &end, 10);
  if (end == v || *end != '\0') {
    throw Error(ErrorCode::kCliArgument,
                std::string("environment variable ") + name + "=\"" + v + "\" is not an integer");
  }
  return static_cast<int>(parsed);
}

}  // namespace

CudaBackendOptions cuda_backend_options_from_env(int device) {
  CudaBackendOptions o;
  o.device = device;
  o.fuse = env_int("LW_CUDA_FUSE", 1) != 0;
  o.graphs = env_int("LW_CUDA_GRAPHS", 1) != 0;
  o.gemm_min_tokens = env_int("LW_CUDA_GEMM_MIN_TOKENS", static_cast<int>(o.gemm_min_tokens));
  o.gemv_splits = env_int("LW_CUDA_GEMV_SPLITS", 0);
  o.gemm_split_acts = env_int("LW_CUDA_GEMM_SPLIT_ACTS", 1) != 0;
  o.int8_gemv_max_tokens =
      env_int("LW_CUDA_INT8_GEMV_MAX_TOKENS", static_cast<int>(o.int8_gemv_max_tokens));
  o.int8_mma_max_tokens =
      env_int("LW_CUDA_INT8_MMA_MAX_TOKENS", static_cast<int>(o.int8_mma_max_tokens));
  return o;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  return make_cuda_backend(cuda_backend_options_from_env(device));
}

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
  std::string why;
  const int count = cuda::device_count(&why);
  if (count == 0) {
    throw Error(ErrorCode::kBackendUnavailable, "backend \"cuda\": no CUDA device (" + why + ")");
  }
  if (options.device < 0 || options.device >= count) {
    throw Error(ErrorCode::kBackendUnavailable,
                "backend \"cuda\": device " + std::to_string(options.device) + " does not exist (" +
                    std::to_string(count) + " CUDA device(s))");
  }
  return std::make_unique<cuda_impl::CudaBackend>(options);
}

namespace cuda_impl {

using cuda::to_stream;

namespace {
cudaEvent_t ev(void* e) { return static_cast<cudaEvent_t>(e); }
}  // namespace

// ---- keys ----

void PendingOp::append_key(std::vector<uint64_t>* key) const {
  auto u = [key](uint64_t v) { key->push_back(v); };
  auto ptr = [key](const void* p) { key->push_back(reinterpret_cast<uintptr_t>(p)); };
  uint32_t fbits = 0;
  std::memcpy(&fbits, &f, 4);
  u(static_cast<uint64_t>(kind) | (static_cast<uint64_t>(mode) << 8) |
    (static_cast<uint64_t>(w.type) << 16) | (static_cast<uint64_t>(fbits) << 32));
  ptr(w.data);
  u(static_cast<uint64_t>(w.rows));
  u(static_cast<uint64_t>(w.cols));
  ptr(in0);
  ptr(in1);
  ptr(out);
  u(static_cast<uint64_t>(n));
  u(static_cast<uint64_t>(i1));
  u(static_cast<uint64_t>(i2));
  u(static_cast<uint64_t>(i3));
  ptr(ids);
  ptr(src);
  if (kind == Kind::kKvWrite || kind == Kind::kAttention) {
    ptr(kv.k);
    ptr(kv.v);
    u(static_cast<uint64_t>(static_cast<uint32_t>(kv.n_blocks)) |
      (static_cast<uint64_t>(static_cast<uint32_t>(kv.n_kv_heads)) << 32));
    u(static_cast<uint64_t>(static_cast<uint32_t>(kv.block_size)) |
      (static_cast<uint64_t>(static_cast<uint32_t>(kv.head_dim)) << 32));
    u(static_cast<uint64_t>(static_cast<uint32_t>(batch.n_tokens)) |
      (static_cast<uint64_t>(static_cast<uint32_t>(max_pos_bucket)) << 32));
    ptr(batch.positions);
    ptr(batch.table_offsets);
    ptr(batch.block_tables);
    u(batch.one_session_run ? 1 : 0);  // selects the flash prefill kernel
  }
}

// ---- construction ----

CudaBackend::CudaBackend(const CudaBackendOptions& options) : options_(options) {
  cuda::set_device(options_.device);
  info_ = cuda::device_info(options_.device);
  stream_ = cuda::stream_create();
  cublas_ = cuda::cublas_create();
  cublas_ws_ = cuda::GpuBuffer(32ull << 20);
  cuda::cublas_set_workspace(cublas_, cublas_ws_.get(), cublas_ws_.size());
  for (int i = 0; i < 2; ++i) {
    LW_CUDA_CHECK(cudaHostAlloc(&staging_[i], kStagingBytes, cudaHostAllocDefault));
    cudaEvent_t e = nullptr;
    LW_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    staging_done_[i] = e;
  }
  cuda::gemv_init();
}

CudaBackend::~CudaBackend() {
  try {
    flush();
    cuda::stream_synchronize(stream_, "CudaBackend teardown");
  } catch (...) {
    // Destructors do not throw; the device error was already reported by the op's caller.
  }
  clear_graphs();
  for (int i = 0; i < 2; ++i) {
    if (staging_done_[i] != nullptr) cudaEventDestroy(ev(staging_done_[i]));
    if (staging_[i] != nullptr) cudaFreeHost(staging_[i]);
  }
  cuda::cublas_destroy(cublas_);
  cuda::stream_destroy(stream_);
}

std::string CudaBackend::description() const {
  return "cuda (" + info_.name + ", device " + std::to_string(options_.device) + ", " +
         std::to_string(info_.sm_count) + " SMs, " +
         std::to_string(info_.total_memory >> 20) + " MiB; fuse " +
         (options_.fuse ? "on" : "off") + ", graphs " + (options_.graphs ? "on" : "off") +
         ", int8 GEMV up to " + std::to_string(options_.int8_gemv_max_tokens) + " tokens (" +
         std::to_string(options_.int8_mma_max_tokens) + " on tensor cores)" +
         ", cuBLAS from " + std::to_string(options_.gemm_min_tokens) + " tokens" +
         (options_.gemm_split_acts ? ", split f16 activations" : ", f16 activations") + ")";
}

bool CudaBackend::supports(GgmlType type) const { return cuda::device_type_supported(type); }

// ---- memory ----

void* CudaBackend::alloc_raw(uint64_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return p;
}

void CudaBackend::free_raw(void* data, uint64_t) {
  // Recorded ops may still use the buffer: run them first.
  try {
    flush();
    cuda::stream_synchronize(stream_, "free");
  } catch (...) {
  }
  cudaFree(data);
}

void CudaBackend::check_range(const DeviceBuffer& buffer, uint64_t offset, uint64_t bytes,
                              const char* what) const {
  uint64_t end = 0;
  LW_CHECK(checked_add(offset, bytes, &end) && end <= buffer.size(),
           std::string(what) + ": range [" + std::to_string(offset) + ", +" +
               std::to_string(bytes) + ") outside buffer of " + std::to_string(buffer.size()));
}

void CudaBackend::copy_host_to_device(void* dst, const void* src, uint64_t bytes) {
  // Double-buffered through pinned staging: the memcpy into one buffer overlaps the DMA out
  // of the other.
  const cudaStream_t s = to_stream(stream_);
  uint64_t done = 0;
  int i = 0;
  while (done < bytes) {
    const uint64_t n = std::min(kStagingBytes, bytes - done);
    LW_CUDA_CHECK(cudaEventSynchronize(ev(staging_done_[i])));
    std::memcpy(staging_[i], static_cast<const uint8_t*>(src) + done, n);
    LW_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + done, staging_[i], n,
                                  cudaMemcpyHostToDevice, s));
    LW_CUDA_CHECK(cudaEventRecord(ev(staging_done_[i]), s));
    done += n;
    i ^= 1;
  }
  cuda::stream_synchronize(stream_, "upload");
}

void CudaBackend::upload(const DeviceBuffer& buffer, uint64_t offset, const void* src,
                         uint64_t bytes) {
  check_range(buffer, offset, bytes, "upload");
  flush();
  if (bytes > 0) copy_host_to_device(buffer.as<uint8_t>(offset), src, bytes);
}

Weight CudaBackend::upload_weight(const DeviceBuffer& buffer, uint64_t offset, GgmlType type,
                                  int64_t rows, int64_t cols, const void* src) {
  LW_CHECK(supports(type), "upload_weight: type " + type_name(static_cast<uint32_t>(type)));
  const uint64_t bytes = weight_device_bytes(type, rows, cols);
  check_range(buffer, offset, bytes, "upload_weight");
  if (type == GgmlType::Q6_K || type == GgmlType::Q8_0) {
    std::vector<uint8_t> packed(bytes);
    cuda::repack_weights(type, src, rows, cols, packed.data());
    upload(buffer, offset, packed.data(), bytes);
  } else {
    upload(buffer, offset, src, bytes);
  }
  return Weight{type, rows, cols, buffer.as<uint8_t>(offset), bytes};
}

void CudaBackend::download(const DeviceBuffer& buffer, uint64_t offset, void* dst,
                           uint64_t bytes) {
  check_range(buffer, offset, bytes, "download");
  flush();
  const cudaStream_t s = to_stream(stream_);
  uint64_t done = 0;
  while (done < bytes) {
    const uint64_t n = std::min(kStagingBytes, bytes - done);
    LW_CUDA_CHECK(cudaMemcpyAsync(staging_[0], buffer.as<uint8_t>(offset + done), n,
                                  cudaMemcpyDeviceToHost, s));
    cuda::stream_synchronize(stream_, "download");
    std::memcpy(static_cast<uint8_t*>(dst) + done, staging_[0], n);
    done += n;
  }
  if (bytes == 0) cuda::stream_synchronize(stream_, "download");
}

void CudaBackend::copy(const void* src, void* dst, uint64_t bytes) {
  if (bytes == 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kCopy;
  op.src = src;
  op.out = static_cast<float*>(dst);
  op.n = static_cast<int64_t>(bytes);
  record(op);
}

void CudaBackend::synchronize() {
  flush();
  cuda::stream_synchronize(stream_, "synchronize");
}

// ---- recording ----

void CudaBackend::record(const PendingOp& op) { pending_.push_back(op); }

void CudaBackend::matmul(const Weight& w, const float* x, int64_t n_tok, float* y) {
  if (n_tok <= 0) return;
  LW_CHECK(supports(w.type) && w.data != nullptr, "matmul: weight type or data");
  PendingOp op;
  op.kind = PendingOp::Kind::kMatmul;
  op.w = w;
  op.in0 = x;
  op.out = y;
  op.n = n_tok;
  record(op);
}

void CudaBackend::rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim,
                           float eps, float* y) {
  if (n_rows <= 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kRmsNorm;
  op.in0 = x;
  op.in1 = weight;
  op.out = y;
  op.n = n_rows;
  op.i1 = dim;
  op.f = eps;
  record(op);
}

void CudaBackend::rope(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
                       int64_t head_dim, const int32_t* positions, float theta, RopeMode mode) {
  if (n_tok <= 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kRope;
  op.out = x;
  op.n = n_tok;
  op.i1 = row_stride;
  op.i2 = n_heads;
  op.i3 = head_dim;
  op.ids = positions;
  op.f = theta;
  op.mode = mode;
  record(op);
}

void CudaBackend::add(const float* a, const float* b, int64_t n, float* y) {
  if (n <= 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kAdd;
  op.in0 = a;
  op.in1 = b;
  op.out = y;
  op.n = n;
  record(op);
}

void CudaBackend::swiglu(const float* gate, const float* up, int64_t n, float* out) {
  if (n <= 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kSwiglu;
  op.in0 = gate;
  op.in1 = up;
  op.out = out;
  op.n = n;
  record(op);
}

void CudaBackend::embed(const Weight& table, const int32_t* tokens, int64_t n_tok, float* out) {
  if (n_tok <= 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kEmbed;
  op.w = table;
  op.ids = tokens;
  op.out = out;
  op.n = n_tok;
  record(op);
}

void CudaBackend::kv_write(const KvLayerView& kv, const AttentionBatch& batch, const float* k,
                           const float* v) {
  if (batch.n_tokens <= 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kKvWrite;
  op.kv = kv;
  op.batch = batch;
  op.in0 = k;
  op.in1 = v;
  record(op);
}

void CudaBackend::attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                            int64_t n_heads, float scale, float* out) {
  if (batch.n_tokens <= 0) return;
  PendingOp op;
  op.kind = PendingOp::Kind::kAttention;
  op.kv = kv;
  op.batch = batch;
  op.in0 = q;
  op.out = out;
  op.n = n_heads;
  op.f = scale;
  // Plan for a power-of-two bound of the context so decode steps share one graph until
  // the context doubles.
  int32_t bucket = 256;
  while (bucket < batch.max_position + 1) bucket *= 2;
  op.max_pos_bucket = bucket - 1;
  record(op);
}

// ---- running a segment ----

void CudaBackend::clear_graphs() {
  for (Graph& g : graphs_) {
    if (g.exec != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g.exec));
  }
  graphs_.clear();
  missed_keys_.clear();
}

void CudaBackend::ensure_workspaces(const std::vector<Launch>& launches) {
  size_t gemv = 0, attn = 0, gemm = 0, act = 0;
  for (const Launch& l : launches) {
    gemv = std::max(gemv, l.gemv_ws);
    act = std::max(act, l.act_ws);
    attn = std::max(attn, l.attn_ws);
    gemm = std::max(gemm, l.gemm_ws);
  }
  bool grown = false;
  auto grow = [&](cuda::GpuBuffer& buf, size_t need, bool zero) {
    if (need <= buf.size()) return;
    cuda::stream_synchronize(stream_, "workspace growth");
    const size_t bytes = std::max(need, buf.size() * 2);
    buf = cuda::GpuBuffer();  // free first
    buf = cuda::GpuBuffer(bytes);
    if (zero) cuda::dev_fill_bytes(buf.get(), 0, bytes);  // gemv counters start at zero
    grown = true;
  };
  grow(gemv_ws_, gemv, true);
  grow(attn_ws_, attn, true);  // attention v2 arrival counters start at zero
  grow(gemm_ws_, gemm, false);
  grow(act_ws_, act, false);
  if (grown) clear_graphs();  // captured graphs hold the old addresses
}

void CudaBackend::flush() {
  if (pending_.empty()) return;
  std::vector<PendingOp> ops;
  ops.swap(pending_);
  ++flush_count_;
  const std::vector<Launch> launches = plan_launches(ops);
  ensure_workspaces(launches);
  const cudaStream_t s = to_stream(stream_);

  if (!options_.graphs) {
    for (const Launch& l : launches) l.run();
    ++stats_.eager;
    stats_.launches += launches.size();
    return;
  }
  std::vector<uint64_t> key;
  key.reserve(ops.size() * 16);
  for (const PendingOp& op : ops) op.append_key(&key);
  for (Graph& g : graphs_) {
    if (g.key == key) {
      g.last_use = flush_count_;
      LW_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(g.exec), s));
      ++stats_.replayed;
      return;
    }
  }
  const auto missed = std::find(missed_keys_.begin(), missed_keys_.end(), key);
  if (missed == missed_keys_.end()) {
    for (const Launch& l : launches) l.run();
    ++stats_.eager;
    stats_.launches += launches.size();
    constexpr size_t kMaxMissed = 8;
    if (missed_keys_.size() >= kMaxMissed) missed_keys_.erase(missed_keys_.begin());
    missed_keys_.push_back(std::move(key));
    return;
  }
  missed_keys_.erase(missed);
  // Seen twice among the recent segments: capture, then launch the graph (which runs it).
  cudaGraph_t graph = nullptr;
  LW_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  try {
    for (const Launch& l : launches) l.run();
  } catch (...) {
    cudaStreamEndCapture(s, &graph);
    if (graph != nullptr) cudaGraphDestroy(graph);
    throw;
  }
  LW_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t st = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  LW_CUDA_CHECK(st);
  constexpr size_t kMaxGraphs = 8;
  if (graphs_.size() >= kMaxGraphs) {
    auto oldest = std::min_element(graphs_.begin(), graphs_.end(),
                                   [](const Graph& a, const Graph& b) {
                                     return a.last_use < b.last_use;
                                   });
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(oldest->exec));
    graphs_.erase(oldest);
  }
  graphs_.push_back(Graph{std::move(key), exec, flush_count_});
  ++stats_.captured;
  LW_CUDA_CHECK(cudaGraphLaunch(exec, s));
}

}  // namespace cuda_impl
}  // namespace lw
