// The v2 split attention kernel (attention_decode.h): one launch per call, for decode and
// for batches the flash kernel does not take. Design and index contracts in attention.h.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/attention_decode.h"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/env_switch.h"
#include "kernels/cuda/warp.cuh"

namespace lw::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kHeads = 8;        // query heads one block serves (<= a GQA group)
constexpr int kTile = 64;        // keys staged per shared-memory tile (two lanes' groups of 32)
constexpr int kPad = 8;          // halves of padding per staged row (bank-conflict-free rows)
constexpr int kMaxSplits = 256;  // bounds the merge weights' shared memory (8 KB)
constexpr int kMaxPairs = kHeads * kAttnV2MaxHeadDim / 2 / kThreads;  // value pairs per thread
constexpr int kMergeElems = kHeads * kAttnV2MaxHeadDim / kThreads;    // merged outputs per thread

struct Params {
  KvLayerView kv;
  const int32_t* positions;
  const int32_t* table_offsets;
  const int32_t* block_tables;
  const float* q;
  float* out;
  int n_heads;
  int group;        // query heads per KV head
  int head_chunks;  // ceil(group / kHeads)
  float scale;
  int split_len;
  int n_splits;
  unsigned* counters;  // [tok][kv head * head_chunks + chunk], zero between launches
  float* o_part;       // [tok][head][split][head_dim], unnormalized
  float* ml_part;      // [tok][head][split][2] (max, sum)
};

// Dynamic shared memory, in this order (every offset a multiple of 16 bytes):
//   kst[2][kTile][hd + kPad], vst[2][kTile][hd + kPad]  f16 (two stages)
//   qs[kHeads][hd] f32 (scaled q), sc[kHeads][kTile] f32, red[2 * kThreads] f32,
//   w[kHeads][n_splits] f32 (merge weights, only when n_splits > 1)
__host__ __device__ inline size_t stage_halves(int hd) {
  return static_cast<size_t>(2) * kTile * (hd + kPad);
}
size_t smem_bytes(int hd, int n_splits) {
  return 2 * stage_halves(hd) * sizeof(__half) +
         sizeof(float) * (static_cast<size_t>(kHeads) * hd + kHeads * kTile + 2 * kThreads +
                          (n_splits > 1 ? static_cast<size_t>(kHeads) * n_splits : 0));
}

// HD > 0: head_dim known at compile time (== p.kv.head_dim); 0: any multiple of 8 <= 128.
template <int HD>
__global__ void __launch_bounds__(kThreads) attn_v2_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ float s_m[kHeads], s_l[kHeads], s_alpha[kHeads];
  __shared__ bool s_last;
  const KvLayerView& kv = p.kv;
  const int hd = HD > 0 ? HD : kv.head_dim;
  const int rs = hd + kPad;  // staged row stride in halves
  __half* kst = reinterpret_cast<__half*>(smem_raw);
  __half* vst = kst + stage_halves(hd);
  float* qs = reinterpret_cast<float*>(vst + stage_halves(hd));
  float* sc = qs + kHeads * hd;
  float* red = sc + kHeads * kTile;
  float* wts = red + 2 * kThreads;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t tok = blockIdx.x;
  const int kh = blockIdx.y / p.head_chunks;
  const int hc = blockIdx.y - kh * p.head_chunks;
  const int split = blockIdx.z;
  const int h0 = kh * p.group + hc * kHeads;
  const int nh = min(kHeads, p.group - hc * kHeads);
  const int len = p.positions[tok] + 1;
  const int32_t table_offset = p.table_offsets[tok];  // issued together with the position
  const int j0 = split * p.split_len;
  if (j0 >= len) return;  // no key of this split is visible: not an arrival either
  const int j1 = min(j0 + p.split_len, len);
  const int n_tiles = (j1 - j0 + kTile - 1) / kTile;
  const int64_t q_stride = static_cast<int64_t>(p.n_heads) * hd;
  const int32_t* table = p.block_tables + table_offset;
  const __half* kbase = reinterpret_cast<const __half*>(kv.k);
  const __half* vbase = reinterpret_cast<const __half*>(kv.v);
  const int chunks = hd / 8;  // 16-byte pieces per row

  // Stage keys t0 .. t0 + n - 1 (all < len: valid table entries) into stage `buf`.
  auto stage = [&](int buf, int t0, int n) {
    __half* kd = kst + buf * kTile * rs;
    __half* vd = vst + buf * kTile * rs;
    for (int c = tid; c < n * chunks; c += kThreads) {
      const int row = c / chunks, col = (c - row * chunks) * 8;
      const int j = t0 + row;
      const int64_t blk = table[j / kv.block_size];
      const int64_t off =
          ((blk * kv.n_kv_heads + kh) * kv.block_size + j % kv.block_size) * hd + col;
      cp_async16(kd + row * rs + col, kbase + off);
      cp_async16(vd + row * rs + col, vbase + off);
    }
    cp_async_commit();
  };
  stage(0, j0, min(kTile, j1 - j0));

  for (int idx = tid; idx < nh * hd; idx += kThreads) {
    const int h = idx / hd, d = idx - h * hd;
    qs[idx] = p.q[tok * q_stride + static_cast<int64_t>(h0 + h) * hd + d] * p.scale;
  }
  if (tid < kHeads) {
    s_m[tid] = -INFINITY;
    s_l[tid] = 0.0f;
  }

  // P x V ownership: value pair e (head e / pairs, dims 2 (e % pairs) + {0, 1}). With fewer
  // pairs than threads the keys are dealt to `groups` thread groups (summed at the end).
  const int pairs = hd / 2, total = nh * pairs;
  const int groups = total >= kThreads ? 1 : kThreads / total;
  const int grp = groups == 1 ? 0 : tid / total;
  const bool pv_active = groups == 1 || tid < groups * total;
  float2 acc[kMaxPairs];
  int own_h[kMaxPairs], own_d[kMaxPairs];
#pragma unroll
  for (int i = 0; i < kMaxPairs; ++i) {
    acc[i] = make_float2(0.0f, 0.0f);
    const int e = groups == 1 ? tid + i * kThreads : (i == 0 ? tid - grp * total : total);
    own_h[i] = e < total ? e / pairs : -1;  // -1: this slot owns nothing
    own_d[i] = e < total ? 2 * (e - own_h[i] * pairs) : 0;
  }

  for (int t = 0; t < n_tiles; ++t) {
    const int t0 = j0 + t * kTile;
    const int nv = min(kTile, j1 - t0);  // valid keys of this tile
    cp_async_wait_all();
    __syncthreads();  // tile t staged; everyone is done with tile t - 1's stage and sc
    if (t + 1 < n_tiles) stage((t + 1) & 1, t0 + kTile, min(kTile, j1 - t0 - kTile));
    const __half* kt = kst + (t & 1) * kTile * rs;
    const __half* vt = vst + (t & 1) * kTile * rs;

    // Scores: lane j of a warp unit scores key 32 * kg + j of the tile for one head (dot over
    // head_dim from the staged row; q broadcast from shared memory). No shuffles.
    const int kgroups = (nv + 31) / 32;
    for (int u = warp; u < kgroups * nh; u += kWarps) {
      const int h = u % nh, jj = (u / nh) * 32 + lane;
      float s = -INFINITY;
      if (jj < nv) {
        const __half* kr = kt + jj * rs;
        const float* qh = qs + h * hd;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma unroll 4
        for (int d = 0; d < hd; d += 8) {
          const uint4 raw = *reinterpret_cast<const uint4*>(kr + d);
          const float2 k0 = __half22float2(*reinterpret_cast<const __half2*>(&raw.x));
          const float2 k1 = __half22float2(*reinterpret_cast<const __half2*>(&raw.y));
          const float2 k2 = __half22float2(*reinterpret_cast<const __half2*>(&raw.z));
          const float2 k3 = __half22float2(*reinterpret_cast<const __half2*>(&raw.w));
          const float4 qa = *reinterpret_cast<const float4*>(qh + d);
          const float4 qb = *reinterpret_cast<const float4*>(qh + d + 4);
          a0 = fmaf(qa.x, k0.x, fmaf(qa.y, k0.y, a0));
          a1 = fmaf(qa.z, k1.x, fmaf(qa.w, k1.y, a1));
          a2 = fmaf(qb.x, k2.x, fmaf(qb.y, k2.y, a2));
          a3 = fmaf(qb.z, k3.x, fmaf(qb.w, k3.y, a3));
        }
        s = (a0 + a1) + (a2 + a3);
      }
      sc[h * kTile + jj] = s;
    }
    __syncthreads();

    // Online softmax over tiles: one warp per head.
    for (int h = warp; h < nh; h += kWarps) {
      float mt = -INFINITY;
      for (int jj = lane; jj < nv; jj += 32) mt = fmaxf(mt, sc[h * kTile + jj]);
      mt = warp_max(mt);
      const float m_old = s_m[h];
      const float m_new = fmaxf(m_old, mt);
      float l = 0.0f;
      for (int jj = lane; jj < nv; jj += 32) {
        const float e = expf(sc[h * kTile + jj] - m_new);
        sc[h * kTile + jj] = e;
        l += e;
      }
      l = warp_sum(l);
      if (lane == 0) {
        const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
        s_alpha[h] = alpha;
        s_l[h] = s_l[h] * alpha + l;
        s_m[h] = m_new;
      }
    }
    __syncthreads();

    // P x V over the valid keys only (rows past nv hold stale data).
    if (pv_active) {
#pragma unroll
      for (int i = 0; i < kMaxPairs; ++i) {
        if (own_h[i] >= 0) {
          const float a = s_alpha[own_h[i]];
          acc[i].x *= a;
          acc[i].y *= a;
        }
      }
#pragma unroll 4
      for (int jj = grp; jj < nv; jj += groups) {
#pragma unroll
        for (int i = 0; i < kMaxPairs; ++i) {
          if (own_h[i] >= 0) {
            const float pw = sc[own_h[i] * kTile + jj];
            const float2 vv =
                __half22float2(*reinterpret_cast<const __half2*>(vt + jj * rs + own_d[i]));
            acc[i].x = fmaf(pw, vv.x, acc[i].x);
            acc[i].y = fmaf(pw, vv.y, acc[i].y);
          }
        }
      }
    }
  }

  // Sum the thread groups (fixed order), then every owned pair is final in acc.
  if (groups > 1) {
    if (pv_active) {
      red[2 * tid] = acc[0].x;  // tid = grp * total + e
      red[2 * tid + 1] = acc[0].y;
    }
    __syncthreads();
    if (tid < total) {
      float2 o = make_float2(0.0f, 0.0f);
      for (int g = 0; g < groups; ++g) {
        o.x += red[2 * (g * total + tid)];
        o.y += red[2 * (g * total + tid) + 1];
      }
      acc[0] = o;
    }
  }
  const bool owns = groups == 1 || tid < total;
  if (p.n_splits == 1) {
    if (owns) {
#pragma unroll
      for (int i = 0; i < kMaxPairs; ++i) {
        if (own_h[i] >= 0) {
          const float inv = 1.0f / s_l[own_h[i]];
          float* o = p.out + tok * q_stride + static_cast<int64_t>(h0 + own_h[i]) * hd + own_d[i];
          o[0] = acc[i].x * inv;
          o[1] = acc[i].y * inv;
        }
      }
    }
    return;
  }
  const int64_t head_base = (tok * p.n_heads + h0) * p.n_splits;  // row of head h0
  if (owns) {
#pragma unroll
    for (int i = 0; i < kMaxPairs; ++i) {
      if (own_h[i] >= 0) {
        float* o = p.o_part +
                   (head_base + static_cast<int64_t>(own_h[i]) * p.n_splits + split) * hd +
                   own_d[i];
        o[0] = acc[i].x;
        o[1] = acc[i].y;
      }
    }
  }
  if (tid < nh) {
    float* ml = p.ml_part + (head_base + static_cast<int64_t>(tid) * p.n_splits + split) * 2;
    ml[0] = s_m[tid];
    ml[1] = s_l[tid];
  }
  // Arrival: the last non-empty split of this (token, head chunk) merges (gemv.cu pattern).
  __threadfence();
  __syncthreads();
  const int arrivals = min(p.n_splits, (len + p.split_len - 1) / p.split_len);
  if (tid == 0) {
    unsigned* counter = p.counters + tok * gridDim.y + blockIdx.y;
    const unsigned prev = atomicAdd(counter, 1u);
    s_last = prev == static_cast<unsigned>(arrivals - 1);
    if (s_last) *counter = 0u;  // every arrival is in; ready for the next launch
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();

  // Merge splits 0 .. arrivals - 1 in order: weights w_s = exp(m_s - m) per head, then
  // out = sum_s w_s o_s / sum_s w_s l_s. Reads bypass L1 (written by other blocks).
  for (int h = warp; h < nh; h += kWarps) {
    const float* ml = p.ml_part + (head_base + static_cast<int64_t>(h) * p.n_splits) * 2;
    float m = -INFINITY;
    for (int s = lane; s < arrivals; s += 32) m = fmaxf(m, __ldcg(ml + 2 * s));
    m = warp_max(m);
    float den = 0.0f;
    for (int s = lane; s < arrivals; s += 32) {
      const float w = expf(__ldcg(ml + 2 * s) - m);
      wts[h * p.n_splits + s] = w;
      den += w * __ldcg(ml + 2 * s + 1);
    }
    den = warp_sum(den);
    if (lane == 0) s_l[h] = den;
  }
  __syncthreads();
  // Every thread owns up to kMergeElems outputs; 8 splits of all of them are loaded per step
  // (independent L2 reads in flight), summed in split order (deterministic).
  const int n_out = nh * hd;
  float num[kMergeElems];
#pragma unroll
  for (int k = 0; k < kMergeElems; ++k) num[k] = 0.0f;
  for (int s0 = 0; s0 < arrivals; s0 += 8) {
    float v[kMergeElems][8];
#pragma unroll
    for (int k = 0; k < kMergeElems; ++k) {
      const int idx = tid + k * kThreads;
      const int h = idx / hd, d = idx - h * hd;
      const float* o = p.o_part + (head_base + static_cast<int64_t>(h) * p.n_splits + s0) * hd + d;
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        v[k][u] =
            idx < n_out && s0 + u < arrivals ? __ldcg(o + static_cast<int64_t>(u) * hd) : 0.0f;
      }
    }
#pragma unroll
    for (int k = 0; k < kMergeElems; ++k) {
      const int idx = tid + k * kThreads;
      const int h = min(idx / hd, kHeads - 1);
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        if (s0 + u < arrivals) num[k] = fmaf(wts[h * p.n_splits + s0 + u], v[k][u], num[k]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kMergeElems; ++k) {
    const int idx = tid + k * kThreads;
    if (idx < n_out) {
      const int h = idx / hd, d = idx - h * hd;
      p.out[tok * q_stride + static_cast<int64_t>(h0 + h) * hd + d] = num[k] / s_l[h];
    }
  }
}

template <int HD>
void launch(const Params& p, const dim3& grid, size_t smem, cudaStream_t s) {
  static const int max_smem = [] {
    int dev = 0, optin = 0;
    LW_CUDA_CHECK(cudaGetDevice(&dev));
    LW_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    // The opt-in limit covers static + dynamic shared memory: the dynamic part gets the rest.
    cudaFuncAttributes attr{};
    LW_CUDA_CHECK(cudaFuncGetAttributes(&attr, attn_v2_kernel<HD>));
    const int dynamic = optin - static_cast<int>(attr.sharedSizeBytes);
    LW_CUDA_CHECK(cudaFuncSetAttribute(attn_v2_kernel<HD>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, dynamic));
    return dynamic;
  }();
  LW_CHECK(smem <= static_cast<size_t>(max_smem),
           "attention v2: " + std::to_string(smem) + " bytes of shared memory > " +
               std::to_string(max_smem) + " (n_splits=" + std::to_string(p.n_splits) + ")");
  attn_v2_kernel<HD><<<grid, kThreads, smem, s>>>(p);
  LW_CUDA_LAUNCH_CHECK("attn_v2_kernel");
}

}  // namespace

bool parse_attention_v2_env(const char* value) {
  return parse_env_switch("LW_CUDA_ATTN_V2", value, true);
}

bool attention_v2_enabled_from_env() {
  static const bool enabled = parse_attention_v2_env(std::getenv("LW_CUDA_ATTN_V2"));
  return enabled;
}

bool attention_v2_eligible(const KvLayerView& kv) {
  return kv.n_kv_heads >= 1 && kv.block_size >= 1 && kv.head_dim >= 8 && kv.head_dim % 8 == 0 &&
         kv.head_dim <= kAttnV2MaxHeadDim && reinterpret_cast<uintptr_t>(kv.k) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(kv.v) % 16 == 0;
}

AttentionPlan attention_v2_plan(int32_t n_tokens, int32_t max_position, int64_t n_heads,
                                const KvLayerView& kv, int sm_count) {
  AttentionPlan plan;
  plan.v2 = true;
  const int64_t n_tok = std::max(1, n_tokens);
  const int64_t group = n_heads / std::max(1, kv.n_kv_heads);
  const int64_t chunks = (group + kHeads - 1) / kHeads;
  const int64_t base_blocks = n_tok * kv.n_kv_heads * chunks;
  const int64_t len = static_cast<int64_t>(std::max(0, max_position)) + 1;
  // Decode: about two blocks per SM (each block's cost is mostly a few dependent memory
  // round trips, so more and shorter splits win until the grid fills the device).
  int64_t splits = std::clamp<int64_t>((2 * std::max(1, sm_count) + base_blocks - 1) / base_blocks,
                                       1, kMaxSplits);
  if (n_tokens >= 16) {
    // Batches the flash kernel does not take (several sessions): up to 8 splits, within
    // ~256 MiB of partials (as the old plan).
    const int64_t per_split =
        n_tok * n_heads * (kv.head_dim + 2) * static_cast<int64_t>(sizeof(float));
    splits = std::clamp<int64_t>((256ll << 20) / std::max<int64_t>(1, per_split), 1, 8);
  }
  if (base_blocks * static_cast<int64_t>(sizeof(unsigned)) >
      static_cast<int64_t>(kAttnCounterBytes)) {
    splits = 1;  // more (token, head chunk) pairs than counters: no splits (grid is huge anyway)
  }
  int64_t split_len = (len + splits - 1) / splits;
  split_len = std::max<int64_t>(32, (split_len + 31) / 32 * 32);
  plan.split_len = static_cast<int>(split_len);
  plan.n_splits = static_cast<int>((len + split_len - 1) / split_len);
  if (plan.n_splits > 1) {
    plan.counter_bytes = kAttnCounterBytes;
    plan.workspace_bytes = plan.counter_bytes + static_cast<size_t>(n_tok) * n_heads *
                                                    plan.n_splits * (kv.head_dim + 2) *
                                                    sizeof(float);
  }
  return plan;
}

void attention_v2(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                  int64_t n_heads, float scale, float* out, const AttentionPlan& plan,
                  void* workspace, size_t workspace_bytes, CudaStream stream) {
  LW_CHECK(plan.v2 && attention_v2_eligible(kv) && n_heads % kv.n_kv_heads == 0 &&
               plan.split_len % 32 == 0 && plan.split_len >= 32 && plan.n_splits >= 1,
           "attention v2: plan/shape mismatch (head_dim=" + std::to_string(kv.head_dim) +
               " split_len=" + std::to_string(plan.split_len) + ")");
  if (batch.n_tokens <= 0) return;
  const int64_t group = n_heads / kv.n_kv_heads;
  const int64_t chunks = (group + kHeads - 1) / kHeads;
  if (plan.n_splits > 1) {
    const size_t counters =
        static_cast<size_t>(batch.n_tokens) * kv.n_kv_heads * chunks * sizeof(unsigned);
    const size_t partials = static_cast<size_t>(batch.n_tokens) * n_heads * plan.n_splits *
                            (kv.head_dim + 2) * sizeof(float);
    LW_CHECK(workspace != nullptr && counters <= plan.counter_bytes &&
                 plan.counter_bytes + partials <= workspace_bytes,
             "attention v2: workspace of " + std::to_string(workspace_bytes) + " bytes < " +
                 std::to_string(plan.counter_bytes + partials) + " (plan for fewer tokens?)");
  }
  Params p{};
  p.kv = kv;
  p.positions = batch.positions;
  p.table_offsets = batch.table_offsets;
  p.block_tables = batch.block_tables;
  p.q = q;
  p.out = out;
  p.n_heads = static_cast<int>(n_heads);
  p.group = static_cast<int>(group);
  p.head_chunks = static_cast<int>(chunks);
  p.scale = scale;
  p.split_len = plan.split_len;
  p.n_splits = plan.n_splits;
  if (plan.n_splits > 1) {
    const size_t per = static_cast<size_t>(batch.n_tokens) * n_heads * plan.n_splits;
    p.counters = static_cast<unsigned*>(workspace);
    p.o_part = reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + plan.counter_bytes);
    p.ml_part = p.o_part + per * kv.head_dim;
  }
  const dim3 grid(static_cast<unsigned>(batch.n_tokens),
                  static_cast<unsigned>(kv.n_kv_heads * chunks),
                  static_cast<unsigned>(plan.n_splits));
  const size_t smem = smem_bytes(kv.head_dim, plan.n_splits);
  const cudaStream_t s = to_stream(stream);
  switch (kv.head_dim) {
    case 32:
      launch<32>(p, grid, smem, s);
      break;
    case 64:
      launch<64>(p, grid, smem, s);
      break;
    case 128:
      launch<128>(p, grid, smem, s);
      break;
    default:
      launch<0>(p, grid, smem, s);
      break;
  }
}

}  // namespace lw::cuda
