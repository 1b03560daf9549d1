// Element-wise ops on f32 vectors: the residual add and the SwiGLU gate
// out = silu(gate) * up with silu(g) = g / (1 + e^-g), plus the embedding row gather.
// *_ref are the scalar references kept for tests; the others are multithreaded on the pool.
// Outputs may alias inputs element for element.
#pragma once

#include <cstdint>

#include "fragments/quant.h"
#include "kernels/cpu/thread_pool.h"

namespace lw {

void add_ref(const float* a, const float* b, int64_t n, float* y);
void add(ThreadPool& pool, const float* a, const float* b, int64_t n, float* y);

void swiglu_ref(const float* gate, const float* up, int64_t n, float* out);
void swiglu(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out);

// out[t] = row tokens[t] of a (rows x cols) table stored in `type`, dequantized to f32.
// Every token must be in [0, rows) (checked by the caller; out-of-range is a bug).
void embed_rows_ref(GgmlType type, const void* table, int64_t rows, int64_t cols,
                    const int32_t* tokens, int64_t n_tok, float* out);
void embed_rows(ThreadPool& pool, GgmlType type, const void* table, int64_t rows, int64_t cols,
                const int32_t* tokens, int64_t n_tok, float* out);

}  // namespace lw
