// Internal to kernels/cuda: the tensor-core int8 GEMV's launch plan and launcher
// (gemv_q8_mma.cu), used by gemv_q8() (gemv_q8.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "fragments/quant.h"
#include "kernels/cuda/gemv_q8_kernel.cuh"

namespace lw::cuda {

// A tensor-core launch's K split and workspace, from the rows of its two parts (a: the
// first type's matrices, b: the second's, 0 without): bounds that hold however the rows are
// grouped (SwiGLU pairs or not). Layout: counters | partials a | partials b | activations.
struct MmaPlan {
  int splits;
  int64_t streams_a, streams_b;  // stream bounds per part (multiples of 64)
  int64_t counters_b;            // first counter of part b
  int64_t partial_off, partial_b_off, act_off, total;
};
MmaPlan mma_plan(int64_t rows_a, int64_t rows_b, int64_t k, int n_tok, int sm_count);

// Launches the tensor-core GEMV for pa (and pb, the second type's matrices, when set) with
// the activations already quantized at pa.xq; ws = the workspace (counters and partial sums
// at the plan's offsets).
void launch_mma(GgmlType type, const q8k::Params& pa, const q8k::Params* pb, const MmaPlan& pl,
                uint8_t* ws, cudaStream_t s);

}  // namespace lw::cuda
