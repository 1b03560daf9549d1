// The paged KV cache ops on the CPU: kv_write stores each batch token's K and V (f32) into
// its block/slot as f16; attention computes causal grouped-query attention of each token's
// query heads over positions 0..pos of its session, reading K/V through the block table
// (layout and batch description in kernels/op_types.h).
// *_ref are the scalar references (scores and softmax in double); the fast versions run over
// (token, KV head) pairs on the pool with an online softmax per KV block, vectorized with
// AVX2/F16C when isa says so. Limits of the fast attention: head_dim <= kAttnMaxHeadDim,
// block_size <= kAttnMaxBlockSize (the engine checks them when it is configured).
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/op_types.h"

namespace lw {

constexpr int64_t kAttnMaxHeadDim = kMaxHeadDim;
constexpr int64_t kAttnMaxBlockSize = kMaxKvBlockSize;

// k, v: batch.n_tokens x (kv.n_kv_heads * kv.head_dim) f32.
void kv_write_ref(const KvLayerView& kv, const AttentionBatch& batch, const float* k,
                  const float* v);
void kv_write(ThreadPool& pool, CpuIsa isa, const KvLayerView& kv, const AttentionBatch& batch,
              const float* k, const float* v);

// q, out: batch.n_tokens x (n_heads * kv.head_dim) f32; n_heads a multiple of n_kv_heads.
void attention_ref(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                   int64_t n_heads, float scale, float* out);
void attention(ThreadPool& pool, CpuIsa isa, const KvLayerView& kv, const AttentionBatch& batch,
               const float* q, int64_t n_heads, float scale, float* out);

}  // namespace lw
