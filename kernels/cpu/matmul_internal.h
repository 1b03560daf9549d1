// Internals shared by the CPU matmul paths (matmul.cpp, matmul_portable.cpp, matmul_avx2.cpp):
// the 8-bit activation blocks the quantized weights are multiplied against, and the row
// kernels each path provides. Not a public interface: include only from kernels/cpu.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fragments/quant.h"

namespace lw::matmul_detail {

// Activations for K-quant weights: 256 values as int8 in [-127, 127] with x ~ d * qs, and
// bsums[g] = sum of qs[16g .. 16g+15] (to apply the per-sub-block mins of Q4_K / Q5_K and
// the -32 offset of Q6_K without touching the values again).
struct alignas(32) ActQ8K {
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
  float d;
};

// Activations for Q8_0 weights: 32 values, x ~ d * qs, qs in [-127, 127].
struct ActQ8_0 {
  float d;
  int8_t qs[kQK8_0];
};

// One call's operands. Quantized activations are stored block-major, xq[block * n_tok + t],
// so the kernels read every token's copy of a block from one contiguous run.
struct MatmulArgs {
  GgmlType type;
  const uint8_t* w;  // rows * row_bytes
  size_t row_bytes;
  int64_t rows;
  int64_t k;
  int64_t n_tok;
  const float* x;  // float weights read the f32 activations [n_tok][k] directly
  const void* xq;  // ActQ8K (Q4_K/Q5_K/Q6_K) or ActQ8_0 (Q8_0), block-major
  float* y;        // [n_tok][rows]
};

// Computes y[t][r] for r in [r0, r1) and every token. Safe to call concurrently on disjoint
// row ranges; each call allocates its own scratch.
void rows_portable(const MatmulArgs& a, int64_t r0, int64_t r1);
void rows_avx2(const MatmulArgs& a, int64_t r0, int64_t r1);

}  // namespace lw::matmul_detail
