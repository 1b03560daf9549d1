// The tensor-core int8 GEMV's host side: launch plan (K split, workspace layout), the
// super-block quantizer and the launches (gemv_q8_mma.cuh).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/env_switch.h"
#include "kernels/cuda/gemv_q8.h"
#include "kernels/cuda/gemv_q8_mma.cuh"
#include "kernels/cuda/gemv_q8_mma_launch.h"

namespace lw::cuda {
namespace {

using q8k::kThreads;
using q8k::kWarps;
using q8k::Params;

// The activations in the super-block format for gridDim.x tokens (blockIdx.y splits a row's
// super-blocks), the RMSNorm applied first when norm_w is set (and the normalized rows stored
// to norm_out, row stride ldx, when that is set).
__global__ void __launch_bounds__(kThreads)
    quantize_sb_kernel(const float* x, int64_t ldx, int64_t k, uint8_t* out, int64_t stride,
                       const float* norm_w, float eps, float* norm_out) {
  __shared__ float scale[1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t t = blockIdx.x;
  q8x2::NormArgs nrm;
  if (norm_w != nullptr) {
    q8k::norm_scales(x + t * ldx, ldx, k, 1, eps, scale, warp, lane);
    nrm.w = norm_w;
    nrm.scale = scale[0];
    nrm.out = norm_out != nullptr ? norm_out + t * ldx : nullptr;
  }
  for (int64_t c = blockIdx.y * kWarps + warp; c < k / 256; c += gridDim.y * kWarps) {
    q8x2::quant_chunk_sb(x + t * ldx, c * 256, k, out + t * stride, lane, nrm);
  }
}

// Tiles of 4 tokens a tensor-core block computes: 1, 2 or 4 (more did not fit the registers
// of 4 blocks per SM); blocks of more tokens split them into groups of 16.
int mma_tiles(int n_tok) {
  const int t = (n_tok + 3) / 4;
  return t <= 1 ? 1 : t <= 2 ? 2 : 4;
}
int mma_groups(int n_tok) { return (n_tok + 4 * mma_tiles(n_tok) - 1) / (4 * mma_tiles(n_tok)); }

int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// Tensor-core launches: tiles x splits blocks (part a's first in a pair launch), two stages
// of activations in shared memory; split counters zeroed first.
q8m::Split split_of(const MmaPlan& pl, uint8_t* ws, bool part_b, int n_tok) {
  q8m::Split sp;
  sp.splits = pl.splits;
  sp.tgroups = mma_groups(n_tok);
  sp.counters = reinterpret_cast<int*>(ws) + (part_b ? pl.counters_b : 0);
  sp.partial = reinterpret_cast<float*>(ws + (part_b ? pl.partial_b_off : pl.partial_off));
  return sp;
}

int64_t tiles_of(const Params& p) { return (p.n_groups + q8m::kTileGroups - 1) / q8m::kTileGroups; }

template <int NT>
void launch_mma_nt(GgmlType type, const Params& pa, const Params* pb, const MmaPlan& pl,
                   uint8_t* ws, cudaStream_t s) {
  const size_t smem = static_cast<size_t>(q8m::stage_bytes(NT));
  if (pl.splits > 1) LW_CUDA_CHECK(cudaMemsetAsync(ws, 0, static_cast<size_t>(pl.partial_off), s));
  const int64_t per_tile = static_cast<int64_t>(pl.splits) * mma_groups(pa.n_tok);
  const int64_t blocks_a = tiles_of(pa) * per_tile;
  if (pb != nullptr) {
    const int64_t blocks_b = tiles_of(*pb) * per_tile;
    q8m::gemv_q8_mma_pair_kernel<NT>
        <<<static_cast<unsigned>(blocks_a + blocks_b), kThreads, smem, s>>>(
            pa, *pb, split_of(pl, ws, false, pa.n_tok), split_of(pl, ws, true, pa.n_tok),
            static_cast<unsigned>(blocks_a));
    LW_CUDA_LAUNCH_CHECK("gemv_q8_mma_pair_kernel");
    return;
  }
  if (type == GgmlType::Q4_K) {
    q8m::gemv_q8_mma_kernel<GgmlType::Q4_K, NT>
        <<<static_cast<unsigned>(blocks_a), kThreads, smem, s>>>(pa,
                                                                 split_of(pl, ws, false, pa.n_tok));
  } else {
    LW_CHECK(type == GgmlType::Q6_K, "gemv_q8: no tensor-core kernel for this type");
    q8m::gemv_q8_mma_kernel<GgmlType::Q6_K, NT>
        <<<static_cast<unsigned>(blocks_a), kThreads, smem, s>>>(pa,
                                                                 split_of(pl, ws, false, pa.n_tok));
  }
  LW_CUDA_LAUNCH_CHECK("gemv_q8_mma_kernel");
}

}  // namespace

MmaPlan mma_plan(int64_t rows_a, int64_t rows_b, int64_t k, int n_tok, int sm_count) {
  constexpr int64_t kTileRows = q8m::kRows * q8m::kTileGroups;
  MmaPlan pl{};
  pl.streams_a = rows_a > 0 ? align_up(rows_a + q8m::kRows, kTileRows) : 0;
  pl.streams_b = rows_b > 0 ? align_up(rows_b + q8m::kRows, kTileRows) : 0;
  pl.counters_b = pl.streams_a / kTileRows;
  const int64_t tiles = (pl.streams_a + pl.streams_b) / kTileRows;
  // About four blocks per SM: the 64-row tiles of small matrices split their K range.
  const int64_t units = tiles * mma_groups(n_tok);  // blocks without a K split
  const int64_t want = (4 * static_cast<int64_t>(sm_count) + units / 2) / units;
  // LW_CUDA_MMA_SPLITS=N fixes the split (A/B runs; 0 or unset = the rule above).
  static const int fixed = parse_env_choice("LW_CUDA_MMA_SPLITS", std::getenv("LW_CUDA_MMA_SPLITS"),
                                            0, {0, 1, 2, 3, 4, 6, 8, 12, 16});
  pl.splits = static_cast<int>(
      std::clamp<int64_t>(fixed != 0 ? fixed : want, 1, std::min<int64_t>(16, k / 256)));
  const int64_t slots = 4 * mma_tiles(n_tok) * mma_groups(n_tok);
  pl.counters_b *= mma_groups(n_tok);
  pl.partial_off = align_up(4 * tiles * mma_groups(n_tok), 256);
  const int64_t part = pl.splits > 1 ? pl.splits * slots * 4 : 0;
  pl.partial_b_off = pl.partial_off + part * pl.streams_a;
  pl.act_off = align_up(pl.partial_b_off + part * pl.streams_b, 256);
  pl.total = pl.act_off + n_tok * gemv_q8_sb_stride(k);
  return pl;
}

void launch_mma(GgmlType type, const Params& pa, const Params* pb, const MmaPlan& pl, uint8_t* ws,
                cudaStream_t s) {
  switch (mma_tiles(pa.n_tok)) {
    case 1:
      launch_mma_nt<1>(type, pa, pb, pl, ws, s);
      break;
    case 2:
      launch_mma_nt<2>(type, pa, pb, pl, ws, s);
      break;
    default:
      launch_mma_nt<4>(type, pa, pb, pl, ws, s);
      break;
  }
}

int64_t gemv_q8_sb_stride(int64_t k) { return 2 * k + k / 16; }

void quantize_act_q8_sb(const float* x, int64_t ldx, int64_t k, int n_tok, void* out,
                        CudaStream stream, const GemvQ8Norm* norm) {
  LW_CHECK(k > 0 && k % 256 == 0 && n_tok >= 1 && ldx >= k && ldx % 4 == 0 &&
               reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(out) % 16 == 0,
           "quantize_act_q8_sb: k=" + std::to_string(k) + " ldx=" + std::to_string(ldx) +
               " n_tok=" + std::to_string(n_tok));
  // Tokens x up to 8 blocks of a row's super-blocks.
  const dim3 grid(static_cast<unsigned>(n_tok),
                  static_cast<unsigned>(std::clamp<int64_t>(k / 256 / kWarps, 1, 8)));
  const bool has = norm != nullptr && norm->weight != nullptr;
  quantize_sb_kernel<<<grid, kThreads, 0, to_stream(stream)>>>(
      x, ldx, k, static_cast<uint8_t*>(out), gemv_q8_sb_stride(k), has ? norm->weight : nullptr,
      has ? norm->eps : 0.f, has ? norm->out : nullptr);
  LW_CUDA_LAUNCH_CHECK("quantize_sb_kernel");
}

}  // namespace lw::cuda
