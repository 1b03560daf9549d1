// Matrix products on weights kept in their stored encoding (Q4_K, Q5_K, Q6_K, Q8_0, F16,
// BF16, F32): y[t][r] = sum_k W[r][k] * x[t][k].
//   W: `rows` rows of `k` values, row-major, each row row_size(type, k) bytes
//   x: n_tok x k f32 (row stride k);  y: n_tok x rows f32 (row stride rows)
// matmul_ref is the plain scalar reference (dequantize a row, multiply in f32, accumulate in
// double) kept for tests; matmul is the fast version: multithreaded over rows on the given
// pool and vectorized (AVX2/FMA chosen at run time when the CPU has it, with the portable
// path still built and tested via matmul_portable). k must be a multiple of the block size.
#pragma once

#include <cstdint>

#include "fragments/quant.h"
#include "kernels/cpu/thread_pool.h"

namespace lw {

void matmul_ref(GgmlType type, const void* w, int64_t rows, int64_t k, const float* x,
                int64_t n_tok, float* y);
void matmul(ThreadPool& pool, GgmlType type, const void* w, int64_t rows, int64_t k,
            const float* x, int64_t n_tok, float* y);
// The fast algorithm with the vector paths disabled (for tests on any CPU).
void matmul_portable(ThreadPool& pool, GgmlType type, const void* w, int64_t rows, int64_t k,
                     const float* x, int64_t n_tok, float* y);
// True when the AVX2/FMA path is in use on this CPU.
bool matmul_has_avx2();

}  // namespace lw
