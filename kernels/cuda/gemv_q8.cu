#include "kernels/cuda/gemv_q8.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "common/error.h"
#include "kernels/cuda/act_q8x2.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/env_switch.h"
#include "kernels/cuda/gemv_q8_dot.cuh"

namespace lw::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

using q8x2::Tok;

// ---- activation staging -------------------------------------------------------------------
// n_tok tokens x ceil(k / 256) chunks, one chunk per warp in turn (first_warp, warp_step).
// With norm_w: RMSNorm first (token t scaled by scales[t]), the normalized rows also stored
// to norm_out (row stride ldx) when set.
__device__ __forceinline__ void quant_tokens(const float* x, int64_t ldx, int64_t k, int n_tok,
                                             uint8_t* out, int64_t stride, int64_t first_warp,
                                             int64_t warp_step, int lane,
                                             const float* norm_w = nullptr,
                                             const float* scales = nullptr,
                                             float* norm_out = nullptr) {
  const int64_t chunks = (k + 255) / 256;
  for (int64_t c = first_warp; c < n_tok * chunks; c += warp_step) {
    const int64_t t = c / chunks, c0 = (c % chunks) * 256;
    q8x2::NormArgs nrm;
    if (norm_w != nullptr) {
      nrm.w = norm_w;
      nrm.scale = scales[t];
      nrm.out = norm_out != nullptr ? norm_out + t * ldx : nullptr;
    }
    q8x2::quant_chunk(x + t * ldx, c0, k, q8x2::tok_out(out + t * stride, k), lane, nrm);
  }
}

// Each token's RMSNorm scale 1 / sqrt(sum(x^2) / k + eps), the sum in a fixed order (lanes,
// then the block's warps); every thread of the block takes part.
__device__ __forceinline__ void norm_scales(const float* x, int64_t ldx, int64_t k, int n_tok,
                                            float eps, float* scales, int warp, int lane) {
  __shared__ float part[kWarps][kGemvQ8MaxTokens];
  const int64_t chunks = (k + 255) / 256;
  for (int t = 0; t < n_tok; ++t) {
    float ss = 0.f;
    for (int64_t c = warp; c < chunks; c += kWarps) {
      const int64_t col = c * 256 + 8 * lane;
      if (col < k) {
        float v[8];
        q8x2::load8(x + t * ldx + col, v);
#pragma unroll
        for (int j = 0; j < 8; ++j) ss = fmaf(v[j], v[j], ss);
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if (lane == 0) part[warp][t] = ss;
  }
  __syncthreads();
  if (threadIdx.x < static_cast<unsigned>(n_tok)) {
    float total = 0.f;
    for (int w = 0; w < kWarps; ++w) total += part[w][threadIdx.x];
    scales[threadIdx.x] = static_cast<float>(
        1.0 / sqrt(static_cast<double>(total) / static_cast<double>(k) + eps));
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads)
    quantize_kernel(const float* x, int64_t ldx, int64_t k, int n_tok, uint8_t* out,
                    int64_t stride) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) >> 5;
  quant_tokens(x, ldx, k, n_tok, out, stride, w, static_cast<int64_t>(gridDim.x) * kWarps,
               threadIdx.x & 31);
}

// ---- the GEMV kernel ------------------------------------------------------------------------
struct WMat {
  const uint8_t* w;
  int64_t rows;
  float* y;
  int64_t ldy;
  const float* add_in;
  float* add_out;
  int64_t ld_add;
};

struct Params {
  WMat m[kGemvMaxGroup];
  int64_t row_begin[kGemvMaxGroup + 1];  // concatenated rows of the group
  int n_mat;
  int64_t k;
  int64_t n_slots;  // slots per row
  int n_tok;
  const float* x;  // f32 activations (quantized into shared memory when xq == nullptr)
  int64_t ldx;
  const uint8_t* xq;  // pre-quantized activations (global memory) or nullptr
  int64_t stride;     // bytes per token of quantized activations
  const float* norm_w;  // RMSNorm fused in front (staged activations only) or nullptr
  float norm_eps;
  float* norm_out;  // block 0 stores the normalized rows here (row stride ldx)
  float* swiglu_out;  // non-null: a gate/up pair
  int64_t ld_swiglu;
  int64_t n_groups;  // row groups: R rows, or R / 2 gate/up row pairs
};

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// Matrix and row of stream s (0..R-1) of row group g; live = the row exists.
template <int R>
__device__ __forceinline__ void stream_row(const Params& p, int64_t g, int s, int* mi,
                                           int64_t* row, bool* live) {
  if (p.swiglu_out != nullptr) {
    *mi = s & 1;
    *row = g * (R / 2) + (s >> 1);
    *live = *row < p.m[0].rows;
    if (!*live) *row = p.m[0].rows - 1;
    return;
  }
  const int64_t gr = g * R + s;
  *live = gr < p.row_begin[p.n_mat];
  const int64_t gc = *live ? gr : p.row_begin[p.n_mat] - 1;
  int m = 0;
#pragma unroll
  for (int i = 1; i < kGemvMaxGroup; ++i) {
    if (i < p.n_mat && gc >= p.row_begin[i]) m = i;
  }
  *mi = m;
  *row = gc - p.row_begin[m];
}

template <GgmlType T, int R>
__device__ __forceinline__ void group_rows(const Params& p, int64_t g,
                                           typename q8dot::W<T>::Row (&rp)[R]) {
#pragma unroll
  for (int s = 0; s < R; ++s) {
    int mi;
    int64_t row;
    bool live;
    stream_row<R>(p, g, s, &mi, &row, &live);
    rp[s] = q8dot::W<T>::row(p.m[mi].w, p.m[mi].rows, row, p.k);
  }
}

// The sums of row group g are complete in every lane: lane (s * NT + t) % 32 stores (s, t).
template <int NT, int R>
__device__ __forceinline__ void store_group(const Params& p, int64_t g, const float (&acc)[R][NT],
                                            int lane) {
  if (p.swiglu_out != nullptr) {
#pragma unroll
    for (int r = 0; r < R / 2; ++r) {
      int mi;
      int64_t row;
      bool live;
      stream_row<R>(p, g, 2 * r, &mi, &row, &live);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (lane != (r * NT + t) % 32 || !live || t >= p.n_tok) continue;
        const float gv = acc[2 * r][t], up = acc[2 * r + 1][t];
        p.m[0].y[t * p.m[0].ldy + row] = gv;
        p.m[1].y[t * p.m[1].ldy + row] = up;
        p.swiglu_out[t * p.ld_swiglu + row] = silu(gv) * up;
      }
    }
    return;
  }
#pragma unroll
  for (int s = 0; s < R; ++s) {
    int mi;
    int64_t row;
    bool live;
    stream_row<R>(p, g, s, &mi, &row, &live);
    const WMat& M = p.m[mi];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (lane != (s * NT + t) % 32 || !live || t >= p.n_tok) continue;
      M.y[t * M.ldy + row] = acc[s][t];
      if (M.add_out != nullptr) {
        M.add_out[t * M.ld_add + row] = M.add_in[t * M.ld_add + row] + acc[s][t];
      }
    }
  }
}

// A warp's position in its flat sequence of (row group, iteration) items.
template <GgmlType T, int R>
struct Cursor {
  int64_t g;   // row group (>= n_groups: past the end)
  int64_t it;  // iteration: slots it * 32 + lane
  typename q8dot::W<T>::Row rp[R];
};

template <GgmlType T, int R>
__device__ __forceinline__ Cursor<T, R> advance(const Params& p, const Cursor<T, R>& c,
                                                int64_t n_it, int64_t n_warps) {
  Cursor<T, R> n = c;
  if (++n.it == n_it) {
    n.it = 0;
    n.g += n_warps;
    if (n.g < p.n_groups) group_rows<T, R>(p, n.g, n.rp);
  }
  return n;
}

template <GgmlType T, int R>
__device__ __forceinline__ void load_item(const Params& p, const Cursor<T, R>& c, int lane,
                                          const typename q8dot::W<T>::Lane& L,
                                          typename q8dot::W<T>::Raw (&raw)[R]) {
  if (c.g < p.n_groups && c.it * 32 + lane < p.n_slots) {
#pragma unroll
    for (int s = 0; s < R; ++s) raw[s] = q8dot::W<T>::load(c.rp[s], static_cast<int>(c.it), L);
  }
}

// Persistent: warp w of the grid takes row groups w, w + W, ... (W = warps in the grid) and
// walks their (group, iteration) items in one flat sequence with the weights of the next item
// always in flight (also across groups), so a warp streams without a gap; the activations are
// staged once per block. (Two items in flight measured slower: 224 vs 242 tok/s tg128, the
// registers cost more warps than they add loads.)
template <GgmlType T, int NT, int R>
__global__ void __launch_bounds__(kThreads) gemv_q8_kernel(const __grid_constant__ Params p) {
  constexpr int D = 1;
  extern __shared__ __align__(16) uint8_t smem[];
  using Wt = q8dot::W<T>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n_warps = static_cast<int64_t>(gridDim.x) * kWarps;
  const int64_t n_it = (p.n_slots + 31) / 32;
  const typename Wt::Lane L = Wt::lane_of(lane);

  // buf[i] holds the weights of item c[i]; c[0] is the one computed next.
  Cursor<T, R> c[D + 1];
  typename Wt::Raw buf[D + 1][R];
  c[0].g = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  c[0].it = 0;
  if (c[0].g < p.n_groups) group_rows<T, R>(p, c[0].g, c[0].rp);
  load_item<T, R>(p, c[0], lane, L, buf[0]);
#pragma unroll
  for (int i = 1; i < D; ++i) {
    c[i] = advance<T, R>(p, c[i - 1], n_it, n_warps);
    load_item<T, R>(p, c[i], lane, L, buf[i]);
  }

  const uint8_t* xb = p.xq;
  if (xb == nullptr) {
    __shared__ float scales[kGemvQ8MaxTokens];
    if (p.norm_w != nullptr) norm_scales(p.x, p.ldx, p.k, p.n_tok, p.norm_eps, scales, warp, lane);
    quant_tokens(p.x, p.ldx, p.k, p.n_tok, smem, p.stride, warp, kWarps, lane, p.norm_w, scales,
                 blockIdx.x == 0 ? p.norm_out : nullptr);
    __syncthreads();
    xb = smem;
  }
  Tok x[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) x[t].p = xb + (t < p.n_tok ? t : 0) * p.stride;

  float acc[R][NT];
#pragma unroll
  for (int s = 0; s < R; ++s) {
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[s][t] = 0.f;
  }
  while (c[0].g < p.n_groups) {
    c[D] = advance<T, R>(p, c[D - 1], n_it, n_warps);
    load_item<T, R>(p, c[D], lane, L, buf[D]);
    if (c[0].it * 32 + lane < p.n_slots) {
      // Each row's slot is unpacked once; each token's activations for the slot are loaded
      // once and dotted with all R rows.
      typename Wt::Unp u[R];
#pragma unroll
      for (int s = 0; s < R; ++s) u[s] = Wt::unpack(buf[0][s], L);
      const int it = static_cast<int>(c[0].it);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const typename Wt::X xs = Wt::load_x(x[t], it, L, p.k);
#pragma unroll
        for (int s = 0; s < R; ++s) acc[s][t] = Wt::dot(u[s], xs, acc[s][t]);
      }
    }
    if (c[0].it == n_it - 1) {  // row group c[0].g is complete
#pragma unroll
      for (int s = 0; s < R; ++s) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          float v = acc[s][t];
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
          acc[s][t] = v;
        }
      }
      store_group<NT, R>(p, c[0].g, acc, lane);
#pragma unroll
      for (int s = 0; s < R; ++s) {
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[s][t] = 0.f;
      }
    }
#pragma unroll
    for (int i = 0; i < D; ++i) {
      c[i] = c[i + 1];
#pragma unroll
      for (int s = 0; s < R; ++s) buf[i][s] = buf[i + 1][s];
    }
  }
}

template <GgmlType T, int NT, int R>
void launch(const Params& p, int sm_count, size_t smem, cudaStream_t s) {
  const auto kernel = gemv_q8_kernel<T, NT, R>;
  // Resident blocks per SM for this kernel and shared-memory size (asked once per pair; the
  // occupancy query is not a stream operation, so it is safe during graph capture).
  static std::mutex mu;
  static std::map<size_t, int> blocks_by_smem;
  int per_sm = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = blocks_by_smem.find(smem);
    if (it == blocks_by_smem.end()) {
      int n = 0;
      LW_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, smem));
      it = blocks_by_smem.emplace(smem, std::max(1, n)).first;
    }
    per_sm = it->second;
  }
  const int64_t want = (p.n_groups + kWarps - 1) / kWarps;
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>(want, static_cast<int64_t>(sm_count) * per_sm));
  kernel<<<blocks, kThreads, smem, s>>>(p);
  LW_CUDA_LAUNCH_CHECK("gemv_q8_kernel");
}

template <GgmlType T, int R>
void launch_nt(const Params& p, int sm_count, size_t smem, cudaStream_t s) {
  if (p.n_tok == 1) {
    launch<T, 1, R>(p, sm_count, smem, s);
  } else if (p.n_tok == 2) {
    launch<T, 2, R>(p, sm_count, smem, s);
  } else if (p.n_tok <= 4) {
    launch<T, 4, R>(p, sm_count, smem, s);
  } else {
    launch<T, 8, R>(p, sm_count, smem, s);
  }
}

template <int R>
void launch_type(GgmlType type, const Params& p, int sm_count, size_t smem, cudaStream_t s) {
  switch (type) {
    case GgmlType::Q4_K: launch_nt<GgmlType::Q4_K, R>(p, sm_count, smem, s); break;
    case GgmlType::Q5_K: launch_nt<GgmlType::Q5_K, R>(p, sm_count, smem, s); break;
    case GgmlType::Q6_K: launch_nt<GgmlType::Q6_K, R>(p, sm_count, smem, s); break;
    case GgmlType::Q8_0: launch_nt<GgmlType::Q8_0, R>(p, sm_count, smem, s); break;
    default: LW_CHECK(false, "gemv_q8: unsupported type"); break;
  }
}

}  // namespace

bool gemv_q8_supported(GgmlType type, int64_t k, int n_tok) {
  if (n_tok < 1 || n_tok > kGemvQ8MaxTokens || k <= 0) return false;
  if (type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K) {
    return k % 256 == 0;
  }
  return type == GgmlType::Q8_0 && k % 32 == 0;
}

int64_t gemv_q8_act_stride(int64_t k) { return (2 * k + k / 8 + k / 4 + 15) / 16 * 16; }

size_t gemv_q8_workspace_bytes(GgmlType type, int64_t k, int n_tok) {
  (void)type;
  const int64_t bytes = n_tok * gemv_q8_act_stride(k);
  return bytes <= static_cast<int64_t>(kGemvQ8StageBytes) ? 0 : static_cast<size_t>(bytes);
}

bool gemv_q8_can_fuse_norm(GgmlType type, int64_t k, int n_tok) {
  return gemv_q8_supported(type, k, n_tok) && gemv_q8_workspace_bytes(type, k, n_tok) == 0;
}

void quantize_act_q8(const float* x, int64_t ldx, int64_t k, int n_tok, void* out,
                     CudaStream stream) {
  LW_CHECK(k > 0 && k % 32 == 0 && n_tok >= 1 && ldx >= k && ldx % 4 == 0 &&
               reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(out) % 16 == 0,
           "quantize_act_q8: k=" + std::to_string(k) + " ldx=" + std::to_string(ldx) +
               " n_tok=" + std::to_string(n_tok));
  const int64_t chunks = static_cast<int64_t>(n_tok) * ((k + 255) / 256);
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>((chunks + kWarps - 1) / kWarps, 4096));
  quantize_kernel<<<blocks, kThreads, 0, to_stream(stream)>>>(
      x, ldx, k, n_tok, static_cast<uint8_t*>(out), gemv_q8_act_stride(k));
  LW_CUDA_LAUNCH_CHECK("quantize_kernel");
}

void gemv_q8(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx,
             int n_tok, const GemvSwiglu* swiglu, void* workspace, size_t workspace_bytes,
             int sm_count, CudaStream stream, int rows_per_warp, const GemvQ8Norm* norm) {
  const GgmlType type = mats[0].type;
  LW_CHECK(n_mats >= 1 && n_mats <= kGemvMaxGroup && gemv_q8_supported(type, k, n_tok),
           "gemv_q8: type " + type_name(static_cast<uint32_t>(type)) + " k=" +
               std::to_string(k) + " n_tok=" + std::to_string(n_tok) + " n_mats=" +
               std::to_string(n_mats));
  LW_CHECK(ldx >= k && ldx % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0,
           "gemv_q8: x must be 16-byte aligned with ldx % 4 == 0 (ldx=" + std::to_string(ldx) +
               ")");
  const bool pair = swiglu != nullptr && swiglu->out != nullptr;
  LW_CHECK(!pair || (n_mats == 2 && mats[0].rows == mats[1].rows),
           "gemv_q8: swiglu needs two matrices of equal rows");
  Params p{};
  int64_t rb = 0;
  for (int i = 0; i < n_mats; ++i) {
    LW_CHECK(mats[i].type == type && mats[i].rows >= 1 && mats[i].w != nullptr &&
                 mats[i].y != nullptr && mats[i].ldy >= mats[i].rows &&
                 (mats[i].add_out == nullptr ||
                  (mats[i].add_in != nullptr && mats[i].ld_add >= mats[i].rows)),
             "gemv_q8: matrix " + std::to_string(i));
    WMat& m = p.m[i];
    m.w = static_cast<const uint8_t*>(mats[i].w);
    m.rows = mats[i].rows;
    m.y = mats[i].y;
    m.ldy = mats[i].ldy;
    m.add_in = mats[i].add_in;
    m.add_out = mats[i].add_out;
    m.ld_add = mats[i].ld_add;
    p.row_begin[i] = rb;
    rb += m.rows;
  }
  for (int i = n_mats; i <= kGemvMaxGroup; ++i) p.row_begin[i] = rb;
  p.n_mat = n_mats;
  p.k = k;
  p.n_slots = type == GgmlType::Q8_0 ? k / 16 : k / 32;
  p.n_tok = n_tok;
  p.x = x;
  p.ldx = ldx;
  p.stride = gemv_q8_act_stride(k);
  if (norm != nullptr && norm->weight != nullptr) {
    LW_CHECK(gemv_q8_can_fuse_norm(type, k, n_tok) &&
                 reinterpret_cast<uintptr_t>(norm->weight) % 16 == 0 &&
                 (norm->out == nullptr || reinterpret_cast<uintptr_t>(norm->out) % 16 == 0),
             "gemv_q8: RMSNorm fusion needs staged activations and 16-byte aligned rows (k=" +
                 std::to_string(k) + " n_tok=" + std::to_string(n_tok) + ")");
    p.norm_w = norm->weight;
    p.norm_eps = norm->eps;
    p.norm_out = norm->out;
  }
  p.swiglu_out = pair ? swiglu->out : nullptr;
  p.ld_swiglu = pair ? swiglu->ld_out : 0;

  // 0 = not set: 4 rows per warp for 1-2 tokens (measured: 242 vs 232 tok/s tg128 with 2)
  // unless that leaves fewer than 8 warps per SM (ncu: the 4096-row down projection ran 7.7
  // warps per SM at R = 4), 2 for more tokens (their sums need the registers).
  static const int env_rows =
      parse_env_choice("LW_CUDA_GEMV_Q8_ROWS", std::getenv("LW_CUDA_GEMV_Q8_ROWS"), 0, {2, 4});
  const int64_t rows4 = pair ? (rb / 2 + 1) / 2 : (rb + 3) / 4;
  const int R = rows_per_warp != 0 ? rows_per_warp
                : env_rows != 0   ? env_rows
                : (n_tok <= 2 && rows4 >= static_cast<int64_t>(sm_count) * 8) ? 4
                                                                              : 2;

  LW_CHECK(R == 2 || R == 4, "gemv_q8: rows_per_warp " + std::to_string(R));
  p.n_groups = pair ? (rb / 2 + R / 2 - 1) / (R / 2) : (rb + R - 1) / R;

  const cudaStream_t s = to_stream(stream);
  size_t smem = 0;
  const size_t need = gemv_q8_workspace_bytes(type, k, n_tok);
  if (need == 0) {
    smem = static_cast<size_t>(n_tok * p.stride);
  } else {
    LW_CHECK(workspace != nullptr && workspace_bytes >= need &&
                 reinterpret_cast<uintptr_t>(workspace) % 16 == 0,
             "gemv_q8: workspace of " + std::to_string(workspace_bytes) + " bytes, need " +
                 std::to_string(need));
    quantize_act_q8(x, ldx, k, n_tok, workspace, stream);
    p.xq = static_cast<const uint8_t*>(workspace);
  }
  if (R == 2) {
    launch_type<2>(type, p, sm_count, smem, s);
  } else {
    launch_type<4>(type, p, sm_count, smem, s);
  }
}

}  // namespace lw::cuda
