// Embedding lookup on the GPU: out[t] = row tokens[t] of a rows x cols table in its stored
// encoding (device layout of weight_layout.h), dequantized exactly like the CPU reference.
#pragma once

#include <cstdint>

#include "fragments/quant.h"
#include "kernels/cuda/cuda_device.h"

namespace lw::cuda {

// tokens: device int32[n_tok], each in [0, rows) (checked by the caller).
void embed_rows(GgmlType type, const void* table, int64_t rows, int64_t cols,
                const int32_t* tokens, int64_t n_tok, float* out, CudaStream stream);

}  // namespace lw::cuda
