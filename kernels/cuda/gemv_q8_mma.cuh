// Internal to kernels/cuda (gemv_q8.cu): the int8 GEMV on tensor cores for Q4_K and Q6_K.
// Same contract, parameters and epilogues as the dp4a kernel (gemv_q8_kernel.cuh); the
// activations are two int8 planes with one dl per 256 values (act_q8x2.cuh, super-block
// format). The products run as mma.sync with the weights as the 16-row A operand (unsigned:
// Q4_K nibbles 0..15, Q6_K 0..63) and the activations as the 8-column B operand: column
// 2i + p is plane p (0 hi, 1 lo) of token 4 * tile + i, so one instruction does 16 rows x 4
// tokens x both planes of one scale group (Q4_K: 32 values, m16n8k32; Q6_K: 16 values,
// m16n8k16). Within a super-block everything stays an exact int32: each group's sums times
// its integer scale, and the K-quant mins (Q6_K: the scale-weighted sums for its -32) as a
// second mma whose A holds the min (scale) in every column; f32 once per super-block.
// Work: a block is 4 warps on a 64-row tile (warp w: 16-row group 4 * tile + w; 32 gate/up
// row pairs with SwiGLU) and up to 16 tokens, all walking the same super-blocks: each
// super-block's activations are copied once into shared memory (cp.async, double-buffered)
// for the four warps, each warp keeps its next super-block's weights in flight. More tokens:
// token groups of 16 in adjacent blocks (the second read of a tile's weights comes from L2).
// Few tiles: the K range splits over `splits` blocks per tile; each writes its partial sums
// to the workspace and the last to arrive adds them in split order (deterministic) and runs
// the epilogue.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/gemv_q8_kernel.cuh"
#include "kernels/cuda/gemv_q8_mma_dot.cuh"

namespace lw::cuda::q8m {

using q8k::kThreads;
using q8k::kWarps;
using q8k::Params;

constexpr int kRows = 16;            // rows (streams) per warp: one row group
constexpr int kTileGroups = kWarps;  // row groups per block (64 rows)
// Resident blocks per SM the registers must allow: 448 gate/up tiles of mistral-7b fit one
// wave on 132 SMs at 4 (ncu: 168 registers, 3 blocks per SM, left a second wave of 52).
constexpr int kMinBlocks = 4;

// Dynamic shared memory of a launch of nt 4-token tiles: two stages.
constexpr int stage_bytes(int nt) { return 2 * 4 * nt * kTokBytes; }

// A warp stores its row group grp: lane (g, t) holds streams g and g + 8 for token
// t0 + 4 * tile + t. SwiGLU: even streams are gate rows, the odd stream next to each
// (lane + 4) the up row of the same output row.
template <int NT>
__device__ __forceinline__ void store_rows(const Params& p, int64_t grp, const float (&v)[NT][2],
                                           int lane, int t0) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int s = g + 8 * r;
    int mi;
    int64_t row;
    bool live;
    q8k::stream_row<kRows>(p, grp, s, &mi, &row, &live);
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const int tok = t0 + 4 * n + t;
      if (p.swiglu_out != nullptr) {
        const float up = __shfl_down_sync(0xffffffffu, v[n][r], 4);
        if ((g & 1) != 0 || !live || tok >= p.n_tok) continue;
        const float gv = v[n][r];
        p.m[0].y[tok * p.m[0].ldy + row] = gv;
        p.m[1].y[tok * p.m[1].ldy + row] = up;
        p.swiglu_out[tok * p.ld_swiglu + row] = q8k::silu(gv) * up;
        continue;
      }
      if (!live || tok >= p.n_tok) continue;
      const q8k::WMat& M = p.m[mi];
      M.y[tok * M.ldy + row] = v[n][r];
      if (M.add_out != nullptr) {
        M.add_out[tok * M.ld_add + row] = M.add_in[tok * M.ld_add + row] + v[n][r];
      }
    }
  }
}

// Copies super-block sb of tokens t0 .. t0 + n_tok - 1 (workspace: the super-block format of
// act_q8x2.cuh, p.stride bytes per token) into one stage (the layout above); every thread of
// the block takes part: 32 copies of the two planes and one of dl per token.
__device__ __forceinline__ void stage_copy(const Params& p, int64_t sb, uint8_t* stage, int t0,
                                           int n_tok) {
  const int64_t k = p.k;
  const uint8_t* xq = p.xq + t0 * p.stride;
  for (int c = threadIdx.x; c < n_tok * 33; c += kThreads) {
    const int tok = c / 33, q = c - 33 * tok;
    const int plane = q >> 4, i = q & 15;  // q == 32: dl
    const int64_t src = q < 32 ? plane * k + sb * 256 + 16 * i : 2 * k + sb * 16;
    cp_async16(stage + tok * kTokBytes + (q < 32 ? plane * kPlane + 16 * i : kDl),
               xq + tok * p.stride + src);
  }
}

// A launch's blocks: (tile, split, token group) with the token group fastest, so the blocks
// that read the same weights run together (the second read comes from L2).
struct Split {
  int splits = 1;   // blocks per tile and token group
  int tgroups = 1;  // token groups of 4 * NT tokens
  int* counters;    // [tiles][tgroups], zero at launch
  float* partial;   // [splits][tgroups * 4 * NT tokens][n_groups * 16 streams]
};

// The block body for block b of a launch of type T.
template <GgmlType T, int NT>
__device__ __forceinline__ void tile_body(const Params& p, unsigned b, const Split& sp,
                                          uint8_t* smem) {
  using W = A<T>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int tg = static_cast<int>(b % sp.tgroups);
  const int split = static_cast<int>(b / sp.tgroups % sp.splits);
  const int64_t tile = b / sp.tgroups / sp.splits;
  const int t0 = tg * 4 * NT, n_loc = min(4 * NT, p.n_tok - t0);
  const int64_t nsb = p.k / 256;
  const int64_t sb0 = nsb * split / sp.splits, sb1 = nsb * (split + 1) / sp.splits;
  const int64_t grp = tile * kTileGroups + warp;  // this warp's row group
  const bool active = grp < p.n_groups;
  constexpr int sbytes = 4 * NT * kTokBytes;

  typename W::Row rp[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    int mi;
    int64_t row;
    bool live;
    q8k::stream_row<kRows>(p, active ? grp : p.n_groups - 1, g + 8 * i, &mi, &row, &live);
    rp[i] = W::row(p.m[mi].w, p.m[mi].rows, row, p.k);
  }
  typename W::Raw cur, nxt;
  if (active && sb0 < sb1) W::load(rp, sb0, t, cur);
  if (sb0 < sb1) stage_copy(p, sb0, smem, t0, n_loc);
  cp_async_commit();

  const XOff xo = x_offsets(lane);
  float acc[NT][2];
#pragma unroll
  for (int n = 0; n < NT; ++n) acc[n][0] = acc[n][1] = 0.f;
  for (int64_t sb = sb0; sb < sb1; ++sb) {
    const int buf = static_cast<int>((sb - sb0) & 1);
    if (sb + 1 < sb1) {
      if (active) W::load(rp, sb + 1, t, nxt);
      stage_copy(p, sb + 1, smem + (buf ^ 1) * sbytes, t0, n_loc);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (active) W::template compute<NT>(cur, smem + buf * sbytes, xo, t, acc);
    __syncthreads();  // the next copy overwrites this stage
    cur = nxt;
  }

  if (sp.splits == 1) {
    if (active) store_rows<NT>(p, grp, acc, lane, t0);
    return;
  }
  // Partial sums to the workspace; the last block of the tile adds them in split order.
  const int64_t streams = p.n_groups * kRows, slots = static_cast<int64_t>(sp.tgroups) * 4 * NT;
  const int counter = static_cast<int>(tile * sp.tgroups + tg);
  if (active) {
#pragma unroll
    for (int n = 0; n < NT; ++n) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        sp.partial[(split * slots + t0 + 4 * n + t) * streams + grp * kRows + g + 8 * r] =
            acc[n][r];
      }
    }
  }
  __threadfence();
  __shared__ int last;
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(sp.counters + counter, 1) == sp.splits - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (active) {
    float v[NT][2];
#pragma unroll
    for (int n = 0; n < NT; ++n) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float s = 0.f;
        for (int q = 0; q < sp.splits; ++q) {
          s +=
              __ldcg(sp.partial + (q * slots + t0 + 4 * n + t) * streams + grp * kRows + g + 8 * r);
        }
        v[n][r] = s;
      }
    }
    store_rows<NT>(p, grp, v, lane, t0);
  }
  if (threadIdx.x == 0) sp.counters[counter] = 0;
}

template <GgmlType T, int NT>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    gemv_q8_mma_kernel(const __grid_constant__ Params p, const Split sp) {
  extern __shared__ __align__(16) uint8_t smem[];
  tile_body<T, NT>(p, blockIdx.x, sp, smem);
}

// Q4_K matrices in the first blocks_a blocks, Q6_K in the rest (same input).
template <int NT>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    gemv_q8_mma_pair_kernel(const __grid_constant__ Params pa, const __grid_constant__ Params pb,
                            const Split sa, const Split sb, unsigned blocks_a) {
  extern __shared__ __align__(16) uint8_t smem[];
  if (blockIdx.x < blocks_a) {
    tile_body<GgmlType::Q4_K, NT>(pa, blockIdx.x, sa, smem);
  } else {
    const unsigned b = blockIdx.x - blocks_a;
    tile_body<GgmlType::Q6_K, NT>(pb, b, sb, smem);
  }
}

}  // namespace lw::cuda::q8m
