// The small-batch decode GEMV (1..kGemvSmallMaxTokens tokens): warps over a few output rows,
// lanes striding over the row's 32-value units with 16-byte loads, activations read as f32
// and every product and sum in f32 (no f16 rounding anywhere), warp-shuffle reduction, the
// residual-add and SwiGLU epilogues fused. No workspace (optional K-split inside a block).
// gemv() dispatches here for small n_tok unless LW_CUDA_GEMV_SMALL=0 (or GemvTuning::small
// says otherwise); the shape is one of kGemvSmallConfigs (gemv_small_kernel.cuh).
#pragma once

#include "kernels/cuda/gemv.h"

namespace lw::cuda {

constexpr int kGemvSmallMaxTokens = 4;
// Kernel shapes (LW_GEMV_SMALL_CONFIGS in gemv_small_kernel.cuh); all compute the same
// result up to f32 summation order. The default is used unless LW_CUDA_GEMV_SMALL_CFG or
// GemvTuning::small_cfg picks another.
constexpr int kGemvSmallConfigs = 6;
constexpr int kGemvSmallDefaultConfig = 0;

// True when the small path covers this call (type, k as gemv_supported, 1 <= n_tok <= 4).
bool gemv_small_supported(GgmlType type, int64_t k, int n_tok);

// Same contract as gemv() (already checked by gemv(); this LW_CHECKs only the small-path
// limits): y, add_out and swiglu->out are written for every row and token. cfg: a
// configuration index < kGemvSmallConfigs, or -1 = gemv_small_config_from_env().
void gemv_small(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx,
                int n_tok, const GemvSwiglu* swiglu, CudaStream stream, int cfg = -1);

// LW_CUDA_GEMV_SMALL: unset or anything but "0" -> true (read once per process).
bool gemv_small_enabled_by_env();

// LW_CUDA_GEMV_SMALL_CFG: unset -> kGemvSmallDefaultConfig; an integer in
// [0, kGemvSmallConfigs) -> that one; anything else throws LW-CLI-001 (read once per process).
int gemv_small_config_from_env();

}  // namespace lw::cuda
