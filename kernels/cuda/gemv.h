// Decode matrix products for 1..kGemvMaxTokens tokens read straight from quantized weights
// (Q4_K, Q5_K, Q6_K, Q8_0, F16, BF16, F32 in the device layout of weight_layout.h): each
// weight byte is read once; a warp dequantizes a 16-row tile to f16 in registers (each
// weight rounded once from its f32 value) and multiplies it on the tensor cores
// (mma.m16n8k16, f32 accumulation) with the activations staged as two f16 planes
// x = hi + lo, so the activations keep ~22 bits (normalized error ~2e-4, from the weights'
// single f16 rounding).
// One launch may cover a group of matrices that share the input (Q/K/V; gate/up), and the
// epilogue can fuse a residual add (z = a + W x) or SwiGLU (out = silu(W0 x) * W1 x).
// K is split across blocks; partial sums go to the caller's workspace and the last block of
// a tile reduces them in a fixed order, so results are deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fragments/quant.h"
#include "kernels/cuda/cuda_device.h"

namespace lw::cuda {

constexpr int kGemvMaxTokens = 64;
constexpr int kGemvMaxGroup = 4;

// One matrix of a group: W (rows x k, device layout) and where its result goes:
//   y[t * ldy + r] = sum_j W[r][j] x[t][j]
//   and, when add_out != nullptr: add_out[t * ld_add + r] = add_in[t * ld_add + r] + y value
//   (add_in may equal add_out: an in-place residual add).
struct GemvMatrix {
  GgmlType type = GgmlType::F32;
  const void* w = nullptr;
  int64_t rows = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  const float* add_in = nullptr;
  float* add_out = nullptr;
  int64_t ld_add = 0;
};

// Optional SwiGLU epilogue for a group of exactly two matrices with equal rows:
// out[t * ld_out + r] = silu(y0) * y1 with silu(g) = g / (1 + e^-g).
struct GemvSwiglu {
  float* out = nullptr;
  int64_t ld_out = 0;
};

struct GemvTuning {
  int splits = 0;  // K-splits per tile; 0 = choose from the device's SM count
  // Small-batch path (gemv_small.h) for n_tok <= 4 of the types it covers: -1 = on unless
  // LW_CUDA_GEMV_SMALL=0, 0 = off, 1 = on. `splits` does not apply to it (no K-split).
  int small = -1;
  // Small-path kernel shape: -1 = LW_CUDA_GEMV_SMALL_CFG / the default, else an index
  // < kGemvSmallConfigs (gemv_small.h).
  int small_cfg = -1;
};

// Sets the kernels' shared-memory limits (once per process; gemv() calls it too). Call it
// before capturing gemv launches into a CUDA graph.
void gemv_init();

// True when gemv can run `type` with inner size k (k % 32 == 0 and a device type).
bool gemv_supported(GgmlType type, int64_t k);

// Workspace bytes that let gemv use its preferred split for this shape (it uses fewer
// splits when given less; 0 bytes forces one split unless swiglu is set, which needs
// at least gemv_min_workspace_bytes). The workspace must be zero-filled once when allocated;
// gemv leaves its counters zero again.
size_t gemv_workspace_bytes(const GemvMatrix* mats, int n_mats, int64_t k, int n_tok,
                            int sm_count, GemvTuning tuning = {});
size_t gemv_min_workspace_bytes(const GemvMatrix* mats, int n_mats, int n_tok);

// Runs the group. All matrices share type and k; x: n_tok rows of k f32 at stride ldx
// (ldx % 4 == 0, 16-byte aligned); 1 <= n_tok <= kGemvMaxTokens; outputs must not alias x.
// LW_CHECKs the contract; CUDA errors throw LW-BACKEND-002.
void gemv(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx,
          int n_tok, const GemvSwiglu* swiglu, void* workspace, size_t workspace_bytes,
          int sm_count, CudaStream stream, GemvTuning tuning = {});

}  // namespace lw::cuda
