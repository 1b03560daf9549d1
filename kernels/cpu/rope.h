// Rotary position embedding, in place on n_tok rows (row stride in floats) of n_heads heads
// of head_dim values (even). Pair i of a head (see RopeMode for which two values form it) is
// rotated by angle positions[t] * theta^(-2i/head_dim):  (a, b) -> (a cos - b sin,
// a sin + b cos). Angles are computed in double in both versions. rope_ref is the scalar
// reference; rope is multithreaded over tokens (the cos/sin table is built once per token).
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"
#include "kernels/op_types.h"

namespace lw {

void rope_ref(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
              const int32_t* positions, float theta, RopeMode mode);
void rope(ThreadPool& pool, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
          int64_t head_dim, const int32_t* positions, float theta, RopeMode mode);

}  // namespace lw
