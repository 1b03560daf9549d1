#include <cuda_fp16.h>

#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/rope.h"

namespace lw::cuda {
namespace {

// KvLayerView::offset() for device code (the struct's method is host-only).
__device__ __forceinline__ int64_t kv_offset(const KvLayerView& kv, int64_t block, int64_t head,
                                             int64_t slot) {
  return ((block * kv.n_kv_heads + head) * kv.block_size + slot) * kv.head_dim;
}

constexpr int kThreads = 128;

struct Params {
  RopeTensor t[2];
  int n_rope;
  int head_dim;
  float theta;
  int adjacent;
  const int32_t* positions;
  int write_kv;
  KvLayerView kv;
  const int32_t* table_offsets;
  const int32_t* block_tables;
  KvWriteSource src;
};

__global__ void __launch_bounds__(kThreads) rope_kv_kernel(const __grid_constant__ Params p) {
  extern __shared__ float cs[];  // cos[half] | sin[half]
  const int64_t tok = blockIdx.x;
  const int half = p.head_dim / 2;
  // Block y of gridDim.y serves heads h with h % gridDim.y == y of every tensor (and those
  // KV heads' cache rows), so a K head is rotated and then stored by the same block.
  const int hy = blockIdx.y, ny = gridDim.y;
  const auto heads_of = [&](int64_t n) -> int64_t { return n > hy ? (n - hy + ny - 1) / ny : 0; };
  const int32_t pos = p.positions[tok];
  if (p.n_rope > 0) {
    for (int i = threadIdx.x; i < half; i += kThreads) {
      const double inv_freq =
          pow(static_cast<double>(p.theta), -2.0 * static_cast<double>(i) / p.head_dim);
      double s, c;
      sincos(static_cast<double>(pos) * inv_freq, &s, &c);
      cs[i] = static_cast<float>(c);
      cs[half + i] = static_cast<float>(s);
    }
    __syncthreads();
    for (int ti = 0; ti < p.n_rope; ++ti) {
      const RopeTensor& rt = p.t[ti];
      float* row = rt.x + tok * rt.row_stride;
      const int64_t pairs = heads_of(rt.n_heads) * half;
      for (int64_t idx = threadIdx.x; idx < pairs; idx += kThreads) {
        const int64_t m = idx / half;
        const int64_t h = hy + m * ny;
        const int i = static_cast<int>(idx - m * half);
        float* head = row + h * p.head_dim;
        const int ia = p.adjacent ? 2 * i : i;
        const int ib = p.adjacent ? 2 * i + 1 : i + half;
        const float a = head[ia], b = head[ib];
        const float c = cs[i], s = cs[half + i];
        head[ia] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
        head[ib] = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c));
      }
    }
  }
  if (!p.write_kv) return;
  __syncthreads();  // K rows rotated by other threads of this block are visible now
  const KvLayerView& kv = p.kv;
  const int32_t* table = p.block_tables + p.table_offsets[tok];
  const int64_t block = table[pos / kv.block_size];
  const int64_t slot = pos % kv.block_size;
  const int64_t width = static_cast<int64_t>(kv.n_kv_heads) * kv.head_dim;
  const float* k = p.src.k + tok * width;
  const float* v = p.src.v + tok * width;
  const int64_t mine = heads_of(kv.n_kv_heads) * kv.head_dim;
  for (int64_t i = threadIdx.x; i < mine; i += kThreads) {
    const int64_t m = i / kv.head_dim, d = i - m * kv.head_dim;
    const int64_t h = hy + m * ny;
    const int64_t idx = h * kv.head_dim + d;
    const int64_t off = kv_offset(kv, block, h, slot) + d;
    reinterpret_cast<__half*>(kv.k)[off] = __float2half_rn(k[idx]);
    reinterpret_cast<__half*>(kv.v)[off] = __float2half_rn(v[idx]);
  }
}

}  // namespace

void rope_kv_write(const RopeTensor* tensors, int n_rope, int64_t n_tok, int64_t head_dim,
                   const int32_t* positions, float theta, RopeMode mode, const KvLayerView* kv,
                   const AttentionBatch* batch, KvWriteSource src, CudaStream stream) {
  LW_CHECK(
      n_rope >= 0 && n_rope <= 2 && head_dim >= 2 && head_dim % 2 == 0 && head_dim <= kMaxHeadDim,
      "rope_kv_write: n_rope=" + std::to_string(n_rope) + " head_dim=" + std::to_string(head_dim));
  if (n_tok <= 0) return;
  Params p{};
  for (int i = 0; i < n_rope; ++i) p.t[i] = tensors[i];
  p.n_rope = n_rope;
  p.head_dim = static_cast<int>(head_dim);
  p.theta = theta;
  p.adjacent = mode == RopeMode::AdjacentPair;
  p.positions = positions;
  if (kv != nullptr) {
    LW_CHECK(batch != nullptr && batch->n_tokens == n_tok && kv->head_dim == head_dim &&
                 src.k != nullptr && src.v != nullptr,
             "rope_kv_write: kv write needs the batch, K and V");
    p.write_kv = 1;
    p.kv = *kv;
    p.positions = batch->positions;
    p.table_offsets = batch->table_offsets;
    p.block_tables = batch->block_tables;
    p.src = src;
  }
  const size_t smem = static_cast<size_t>(head_dim) * sizeof(float);
  // Few tokens (decode, batched decode): spread each token's heads over 8 blocks so the work
  // is not one block's latency chain (32 tokens took 18.9 us per layer with one block each);
  // many tokens (prefill) fill the device with one block each.
  const dim3 grid(static_cast<unsigned>(n_tok), n_tok <= 64 ? 8u : 1u);
  rope_kv_kernel<<<grid, kThreads, smem, to_stream(stream)>>>(p);
  LW_CUDA_LAUNCH_CHECK("rope_kv_kernel");
}

}  // namespace lw::cuda
