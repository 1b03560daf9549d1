// The small-batch decode GEMV (1..kGemvSmallMaxTokens tokens): one warp per output row,
// lanes striding over the row's 32-value units with 16-byte loads, activations read as f32
// and every product and sum in f32 (no f16 rounding anywhere), warp-shuffle reduction, the
// residual-add and SwiGLU epilogues fused. No K-split, so no workspace. gemv() dispatches
// here for small n_tok unless LW_CUDA_GEMV_SMALL=0 (or GemvTuning::small says otherwise).
#pragma once

#include "kernels/cuda/gemv.h"

namespace lw::cuda {

constexpr int kGemvSmallMaxTokens = 4;

// True when the small path covers this call (type, k as gemv_supported, 1 <= n_tok <= 4).
bool gemv_small_supported(GgmlType type, int64_t k, int n_tok);

// Same contract as gemv() (already checked by gemv(); this LW_CHECKs only the small-path
// limits): y, add_out and swiglu->out are written for every row and token.
void gemv_small(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx,
                int n_tok, const GemvSwiglu* swiglu, CudaStream stream);

// LW_CUDA_GEMV_SMALL: unset or anything but "0" -> true (read once per process).
bool gemv_small_enabled_by_env();

}  // namespace lw::cuda
