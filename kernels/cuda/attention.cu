#include "kernels/cuda/attention.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "kernels/cuda/attention_decode.h"
#include "kernels/cuda/attention_flash.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/warp.cuh"

namespace lw::cuda {
namespace {

// KvLayerView::offset() for device code (the struct's method is host-only).
__device__ __forceinline__ int64_t kv_offset(const KvLayerView& kv, int64_t block,
                                             int64_t head, int64_t slot) {
  return ((block * kv.n_kv_heads + head) * kv.block_size + slot) * kv.head_dim;
}

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kHeadsPerBlock = 8;  // query heads one block serves (<= a GQA group)
constexpr int kMaxSplitLen = 512;

struct Params {
  KvLayerView kv;
  const int32_t* positions;
  const int32_t* table_offsets;
  const int32_t* block_tables;
  const float* q;
  float* out;
  int n_heads;
  int group;        // query heads per KV head
  int head_chunks;  // ceil(group / kHeadsPerBlock)
  float scale;
  int split_len;
  int n_splits;
  float* o_part;   // [tok][head][split][head_dim]
  float* ml_part;  // [tok][head][split][2] (max, sum)
};


__global__ void __launch_bounds__(kThreads) attn_split_kernel(const __grid_constant__ Params p) {
  extern __shared__ float smem[];
  const KvLayerView& kv = p.kv;
  const int hd = kv.head_dim;
  const int S = p.split_len;
  float* qs = smem;                                  // [kHeadsPerBlock][hd]
  float* sc = qs + kHeadsPerBlock * hd;              // [kHeadsPerBlock][S]
  float* red = sc + kHeadsPerBlock * S;              // [groups][kHeadsPerBlock][hd]
  __shared__ float s_m[kHeadsPerBlock], s_l[kHeadsPerBlock];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t tok = blockIdx.x;
  const int kh = blockIdx.y / p.head_chunks;
  const int hc = blockIdx.y - kh * p.head_chunks;
  const int split = blockIdx.z;
  const int h0 = kh * p.group + hc * kHeadsPerBlock;
  const int nh = min(kHeadsPerBlock, p.group - hc * kHeadsPerBlock);
  const int len = p.positions[tok] + 1;
  const int j0 = split * S;
  const int j1 = min(j0 + S, len);
  const int64_t q_stride = static_cast<int64_t>(p.n_heads) * hd;

  if (j0 >= j1) {  // nothing of this split is visible to the token
    if (p.n_splits > 1) {
      for (int h = tid; h < nh; h += kThreads) {
        float* ml = p.ml_part + ((tok * p.n_heads + h0 + h) * p.n_splits + split) * 2;
        ml[0] = -INFINITY;
        ml[1] = 0.0f;
      }
    }
    return;
  }
  for (int idx = tid; idx < nh * hd; idx += kThreads) {
    const int h = idx / hd, d = idx - h * hd;
    qs[h * hd + d] = p.q[tok * q_stride + static_cast<int64_t>(h0 + h) * hd + d] * p.scale;
  }
  __syncthreads();

  // Phase 1: scores, one key per warp at a time (lanes over head_dim in half2 steps).
  const int32_t* table = p.block_tables + p.table_offsets[tok];
  const __half* kbase = reinterpret_cast<const __half*>(kv.k);
  const __half* vbase = reinterpret_cast<const __half*>(kv.v);
  for (int j = j0 + warp; j < j1; j += kWarps) {
    const int64_t off = kv_offset(kv, table[j / kv.block_size], kh, j % kv.block_size);
    float dot[kHeadsPerBlock];
#pragma unroll
    for (int h = 0; h < kHeadsPerBlock; ++h) dot[h] = 0.0f;
    for (int d = 2 * lane; d < hd; d += 64) {
      const float2 kk = __half22float2(*reinterpret_cast<const __half2*>(kbase + off + d));
#pragma unroll
      for (int h = 0; h < kHeadsPerBlock; ++h) {
        if (h < nh) dot[h] += qs[h * hd + d] * kk.x + qs[h * hd + d + 1] * kk.y;
      }
    }
#pragma unroll
    for (int h = 0; h < kHeadsPerBlock; ++h) {
      if (h < nh) {
        const float s = warp_sum(dot[h]);
        if (lane == 0) sc[h * S + (j - j0)] = s;
      }
    }
  }
  __syncthreads();

  // Phase 2: split-local softmax numerators, one warp per head.
  const int n = j1 - j0;
  for (int h = warp; h < nh; h += kWarps) {
    float m = -INFINITY;
    for (int j = lane; j < n; j += 32) m = fmaxf(m, sc[h * S + j]);
    m = warp_max(m);
    float l = 0.0f;
    for (int j = lane; j < n; j += 32) {
      const float e = expf(sc[h * S + j] - m);
      sc[h * S + j] = e;
      l += e;
    }
    l = warp_sum(l);
    if (lane == 0) {
      s_m[h] = m;
      s_l[h] = l;
    }
  }
  __syncthreads();

  // Phase 3: P x V. Threads own value pairs; when a head has fewer pairs than threads the
  // positions are dealt to `groups` thread groups and summed through shared memory.
  const int pairs = hd / 2;
  const int groups = pairs >= kThreads ? 1 : kThreads / pairs;
  const int grp = tid / pairs;
  if (grp < groups) {
    for (int dp = tid - grp * pairs; dp < pairs; dp += kThreads) {
      float2 acc[kHeadsPerBlock];
#pragma unroll
      for (int h = 0; h < kHeadsPerBlock; ++h) acc[h] = make_float2(0.0f, 0.0f);
      for (int j = j0 + grp; j < j1; j += groups) {
        const int64_t off = kv_offset(kv, table[j / kv.block_size], kh, j % kv.block_size);
        const float2 vv = __half22float2(*reinterpret_cast<const __half2*>(vbase + off + 2 * dp));
#pragma unroll
        for (int h = 0; h < kHeadsPerBlock; ++h) {
          if (h < nh) {
            const float pw = sc[h * S + (j - j0)];
            acc[h].x += pw * vv.x;
            acc[h].y += pw * vv.y;
          }
        }
      }
#pragma unroll
      for (int h = 0; h < kHeadsPerBlock; ++h) {
        if (h < nh) {
          red[(grp * kHeadsPerBlock + h) * hd + 2 * dp] = acc[h].x;
          red[(grp * kHeadsPerBlock + h) * hd + 2 * dp + 1] = acc[h].y;
        }
      }
    }
  }
  __syncthreads();
  for (int idx = tid; idx < nh * hd; idx += kThreads) {
    const int h = idx / hd, d = idx - h * hd;
    float o = 0.0f;
    for (int g = 0; g < groups; ++g) o += red[(g * kHeadsPerBlock + h) * hd + d];
    const int64_t head = h0 + h;
    if (p.n_splits == 1) {
      p.out[tok * q_stride + head * hd + d] = o / s_l[h];
    } else {
      p.o_part[((tok * p.n_heads + head) * p.n_splits + split) * hd + d] = o;
      if (d == 0) {
        float* ml = p.ml_part + ((tok * p.n_heads + head) * p.n_splits + split) * 2;
        ml[0] = s_m[h];
        ml[1] = s_l[h];
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads) attn_combine_kernel(const __grid_constant__ Params p) {
  const int hd = p.kv.head_dim;
  const int64_t tok = blockIdx.x, head = blockIdx.y;
  const int64_t base = (tok * p.n_heads + head) * p.n_splits;
  float m = -INFINITY;
  for (int s = 0; s < p.n_splits; ++s) m = fmaxf(m, p.ml_part[(base + s) * 2]);
  float den = 0.0f;
  for (int s = 0; s < p.n_splits; ++s) {
    const float ms = p.ml_part[(base + s) * 2];
    if (ms != -INFINITY) den += expf(ms - m) * p.ml_part[(base + s) * 2 + 1];
  }
  for (int d = threadIdx.x; d < hd; d += kThreads) {
    float num = 0.0f;
    for (int s = 0; s < p.n_splits; ++s) {
      const float ms = p.ml_part[(base + s) * 2];
      if (ms != -INFINITY) num += expf(ms - m) * p.o_part[(base + s) * hd + d];
    }
    p.out[tok * static_cast<int64_t>(p.n_heads) * hd + head * hd + d] = num / den;
  }
}

size_t smem_bytes(int hd, int split_len) {
  const int pairs = hd / 2;
  const int groups = pairs >= kThreads ? 1 : kThreads / pairs;
  return sizeof(float) * (static_cast<size_t>(kHeadsPerBlock) * hd +
                          static_cast<size_t>(kHeadsPerBlock) * split_len +
                          static_cast<size_t>(groups) * kHeadsPerBlock * hd);
}

}  // namespace

AttentionPlan attention_plan(int32_t n_tokens, int32_t max_position, int64_t n_heads,
                             const KvLayerView& kv, int sm_count) {
  if (attention_v2_enabled_from_env() && attention_v2_eligible(kv)) {
    return attention_v2_plan(n_tokens, max_position, n_heads, kv, sm_count);
  }
  AttentionPlan plan;
  const int64_t group = n_heads / std::max(1, kv.n_kv_heads);
  const int64_t chunks = (group + kHeadsPerBlock - 1) / kHeadsPerBlock;
  const int64_t base_blocks = static_cast<int64_t>(std::max(1, n_tokens)) * kv.n_kv_heads * chunks;
  const int64_t len = static_cast<int64_t>(max_position) + 1;
  const int64_t want_splits =
      std::max<int64_t>(1, (2 * std::max(1, sm_count) + base_blocks - 1) / base_blocks);
  int64_t split_len = (len + want_splits - 1) / want_splits;
  if (n_tokens >= 16) {
    // Prefill-sized batches already fill the device, but one block walking up to 512 keys
    // is a long dependent chain (measured 1.0 ms per mistral layer at pp512): cut each
    // token's context into up to 8 splits of >= 64 keys, within ~256 MiB of workspace.
    const int64_t per_split =
        static_cast<int64_t>(n_tokens) * n_heads * (kv.head_dim + 2) * sizeof(float);
    const int64_t splits = std::clamp<int64_t>((256ll << 20) / std::max<int64_t>(1, per_split),
                                               1, 8);
    split_len = (len + splits - 1) / splits;
  }
  split_len = (split_len + 31) / 32 * 32;
  split_len = std::clamp<int64_t>(split_len, 64, kMaxSplitLen);
  plan.split_len = static_cast<int>(split_len);
  plan.n_splits = static_cast<int>((len + split_len - 1) / split_len);
  if (plan.n_splits > 1) {
    const size_t per = static_cast<size_t>(std::max(1, n_tokens)) * n_heads * plan.n_splits;
    plan.counter_bytes = kAttnCounterBytes;  // unused here; partials after them
    plan.workspace_bytes = kAttnCounterBytes + per * (kv.head_dim + 2) * sizeof(float);
  }
  return plan;
}

void attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
               int64_t n_heads, float scale, float* out, const AttentionPlan& plan,
               void* workspace, size_t workspace_bytes, CudaStream stream) {
  LW_CHECK(kv.n_kv_heads >= 1 && n_heads % kv.n_kv_heads == 0 && kv.head_dim % 2 == 0 &&
               kv.head_dim <= kMaxHeadDim && plan.split_len % 32 == 0 &&
               (plan.v2 || plan.split_len <= kMaxSplitLen) && plan.n_splits >= 1,
           "attention: n_heads=" + std::to_string(n_heads) +
               " n_kv_heads=" + std::to_string(kv.n_kv_heads) +
               " head_dim=" + std::to_string(kv.head_dim));
  if (batch.n_tokens <= 0) return;
  // One session's prefill: the tensor-core kernel (attention_flash.h); LW_CUDA_FLASH_ATTN=0
  // keeps this one.
  if (flash_attention_eligible(kv, batch, n_heads, q, out, flash_attention_enabled_from_env())) {
    flash_attention(kv, batch, q, n_heads, scale, out, stream);
    return;
  }
  if (plan.v2) {  // LW_CUDA_ATTN_V2=0 (or an ineligible shape) plans the old kernels below
    attention_v2(kv, batch, q, n_heads, scale, out, plan, workspace, workspace_bytes, stream);
    return;
  }
  LW_CHECK(plan.n_splits == 1 || (workspace != nullptr && workspace_bytes >= plan.workspace_bytes),
           "attention: workspace of " + std::to_string(workspace_bytes) + " bytes < " +
               std::to_string(plan.workspace_bytes));
  Params p{};
  p.kv = kv;
  p.positions = batch.positions;
  p.table_offsets = batch.table_offsets;
  p.block_tables = batch.block_tables;
  p.q = q;
  p.out = out;
  p.n_heads = static_cast<int>(n_heads);
  p.group = static_cast<int>(n_heads / kv.n_kv_heads);
  p.head_chunks = (p.group + kHeadsPerBlock - 1) / kHeadsPerBlock;
  p.scale = scale;
  p.split_len = plan.split_len;
  p.n_splits = plan.n_splits;
  if (plan.n_splits > 1) {
    const size_t per = static_cast<size_t>(batch.n_tokens) * n_heads * plan.n_splits;
    p.o_part = reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + kAttnCounterBytes);
    p.ml_part = p.o_part + per * kv.head_dim;
  }
  const size_t smem = smem_bytes(kv.head_dim, plan.split_len);
  // At most 48 KB for every head_dim <= kMaxHeadDim (no opt-in needed).
  const cudaStream_t s = to_stream(stream);
  const dim3 grid(static_cast<unsigned>(batch.n_tokens),
                  static_cast<unsigned>(kv.n_kv_heads * p.head_chunks),
                  static_cast<unsigned>(plan.n_splits));
  attn_split_kernel<<<grid, kThreads, smem, s>>>(p);
  LW_CUDA_LAUNCH_CHECK("attn_split_kernel");
  if (plan.n_splits > 1) {
    attn_combine_kernel<<<dim3(static_cast<unsigned>(batch.n_tokens),
                               static_cast<unsigned>(n_heads)),
                          kThreads, 0, s>>>(p);
    LW_CUDA_LAUNCH_CHECK("attn_combine_kernel");
  }
}

}  // namespace lw::cuda
