// Internal to kernels/cuda (gemv_q8.cu): the int8 GEMV's device code. Activation staging
// (with the optional RMSNorm), the per-launch parameters, the persistent kernel body that
// walks (row group, iteration) items with the next item's weights in flight, and the two
// kernels: one weight type per launch, or two types (gemv_q8_pair_kernel) sharing the input.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/act_q8x2.cuh"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/gemv_q8.h"
#include "kernels/cuda/gemv_q8_dot.cuh"

namespace lw::cuda::q8k {

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
    scales[threadIdx.x] =
        static_cast<float>(1.0 / sqrt(static_cast<double>(total) / static_cast<double>(k) + eps));
  }
  __syncthreads();
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
  const uint8_t* xq;    // pre-quantized activations (global memory) or nullptr
  int64_t stride;       // bytes per token of quantized activations
  const float* norm_w;  // RMSNorm fused in front (staged activations only) or nullptr
  float norm_eps;
  float* norm_out;    // block 0 stores the normalized rows here (row stride ldx)
  float* swiglu_out;  // non-null: a gate/up pair
  int64_t ld_swiglu;
  int64_t n_groups;  // row groups: R rows, or R / 2 gate/up row pairs
};

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// Matrix and row of stream s (0..R-1) of row group g; live = the row exists.
template <int R>
__device__ __forceinline__ void stream_row(const Params& p, int64_t g, int s, int* mi, int64_t* row,
                                           bool* live) {
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
// The kernel body for `n_blocks` blocks of type T (`block` = this block's index among them).
template <GgmlType T, int NT, int R>
__device__ __forceinline__ void gemv_body(const Params& p, int64_t block, int64_t n_blocks,
                                          uint8_t* smem) {
  constexpr int D = 1;
  using Wt = q8dot::W<T>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n_warps = n_blocks * kWarps;
  const int64_t n_it = (p.n_slots + 31) / 32;
  const typename Wt::Lane L = Wt::lane_of(lane);

  // buf[i] holds the weights of item c[i]; c[0] is the one computed next.
  Cursor<T, R> c[D + 1];
  typename Wt::Raw buf[D + 1][R];
  c[0].g = block * kWarps + warp;
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
                 block == 0 ? p.norm_out : nullptr);
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
__global__ void __launch_bounds__(kThreads) gemv_q8_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) uint8_t smem[];
  gemv_body<T, NT, R>(p, blockIdx.x, gridDim.x, smem);
}

// Two weight types in one launch (Q/K in Q4_K and V in Q6_K share their input): the first
// blocks_a blocks run pa's matrices, the rest pb's; both stage the same activations.
template <GgmlType TA, GgmlType TB, int NT, int R>
__global__ void __launch_bounds__(kThreads)
    gemv_q8_pair_kernel(const __grid_constant__ Params pa, const __grid_constant__ Params pb,
                        unsigned blocks_a) {
  extern __shared__ __align__(16) uint8_t smem[];
  if (blockIdx.x < blocks_a) {
    gemv_body<TA, NT, R>(pa, blockIdx.x, blocks_a, smem);
  } else {
    gemv_body<TB, NT, R>(pb, blockIdx.x - blocks_a, gridDim.x - blocks_a, smem);
  }
}

}  // namespace lw::cuda::q8k
