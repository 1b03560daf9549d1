// Causal grouped-query attention over the paged f16 KV cache (layout in kernels/op_types.h)
// on the GPU, for any mix of tokens and sessions (decode and prefill alike). Flash-decoding
// style: grid = tokens x KV heads (x head chunks of <= 8 query heads) x context splits; each
// block scores its split for all query heads of its KV head (K read once per group), takes
// a split-local softmax in f32 and accumulates V; when there is more than one split a
// second kernel merges the splits with their (max, sum) pairs (decode: enough splits to
// fill the device; batches of >= 16 tokens: up to 8 splits of >= 64 keys, within ~256 MiB
// of workspace). The full score matrix is
// never materialized. Scores are f32 (the CPU reference uses double: normalized error
// ~1e-6 plus the f16 storage of K/V, which both sides share).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_device.h"
#include "kernels/op_types.h"

namespace lw::cuda {

struct AttentionPlan {
  int split_len = 0;  // positions per split (multiple of 32, <= 512)
  int n_splits = 0;
  size_t workspace_bytes = 0;
};

// Plans a launch for n_tokens tokens whose positions are all <= max_position. The plan
// (and so the grid) depends only on these arguments: a caller that captures a CUDA graph
// passes an upper bound of max_position that changes rarely.
AttentionPlan attention_plan(int32_t n_tokens, int32_t max_position, int64_t n_heads,
                             const KvLayerView& kv, int sm_count);

// q, out: batch.n_tokens x (n_heads * kv.head_dim) f32 (out must not alias q); scores
// scaled by `scale`. `plan` from attention_plan() with max_position >= every position in
// the batch; workspace of at least plan.workspace_bytes.
void attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
               int64_t n_heads, float scale, float* out, const AttentionPlan& plan,
               void* workspace, size_t workspace_bytes, CudaStream stream);

}  // namespace lw::cuda
