// Fast single-pass Q4_K and Q6_K encoders for synthetic weights. ggml's reference quantizers
// (lw::quantize_row) search each sub-block's scale iteratively, ~30-60 ns a value here, too
// slow to write a 7B model in minutes; these take the scales from the sub-block's min / max
// in one pass (a few ns a value). The output is a valid block of the published layout
// (quant.h) that lw::dequantize_row decodes to within one quantization step of the input;
// only the choice of scales differs from ggml's.
#pragma once

#include <cstdint>

#include "fragments/quant.h"

namespace lw {

// n must be a multiple of kQK_K; dst holds n / kQK_K blocks.
void synth_quantize_q4_k(const float* src, BlockQ4_K* dst, int64_t n);
void synth_quantize_q6_k(const float* src, BlockQ6_K* dst, int64_t n);

}  // namespace lw
