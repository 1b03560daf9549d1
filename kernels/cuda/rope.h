// RoPE and the paged KV-cache write on the GPU. rope() matches kernels/cpu/rope.h (angles
// pos * theta^(-2i/d) in double, rotation in f32, both RopeModes). rope_kv_write() is the
// decode-path fusion: it rotates up to two tensors (Q and K) in place and then stores K
// and V of every token into the f16 cache (round to nearest even), exactly like rope() on
// each tensor followed by kv_write(). Blocks: one per token, times 8 (head groups) below 32 tokens.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_device.h"
#include "kernels/op_types.h"

namespace lw::cuda {

struct RopeTensor {
  float* x = nullptr;      // n_tok rows at row_stride floats
  int64_t row_stride = 0;
  int64_t n_heads = 0;     // heads of head_dim values at the start of each row
};

struct KvWriteSource {
  const float* k = nullptr;  // n_tok x (n_kv_heads * head_dim), dense
  const float* v = nullptr;
};

// Rotates `n_rope` (0..2) tensors, then (when kv is given) writes K/V into the cache for
// the batch's tokens. positions: device int32[n_tok] (batch.positions when kv is given).
void rope_kv_write(const RopeTensor* tensors, int n_rope, int64_t n_tok, int64_t head_dim,
                   const int32_t* positions, float theta, RopeMode mode,
                   const KvLayerView* kv, const AttentionBatch* batch, KvWriteSource src,
                   CudaStream stream);

inline void rope(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                 const int32_t* positions, float theta, RopeMode mode, CudaStream stream) {
  const RopeTensor t{x, row_stride, n_heads};
  rope_kv_write(&t, 1, n_tok, head_dim, positions, theta, mode, nullptr, nullptr, {}, stream);
}

inline void kv_write(const KvLayerView& kv, const AttentionBatch& batch, const float* k,
                     const float* v, CudaStream stream) {
  rope_kv_write(nullptr, 0, batch.n_tokens, kv.head_dim, batch.positions, 0.0f,
                RopeMode::AdjacentPair, &kv, &batch, KvWriteSource{k, v}, stream);
}

}  // namespace lw::cuda
