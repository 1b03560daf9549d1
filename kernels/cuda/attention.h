// Causal grouped-query attention over the paged f16 KV cache (layout in kernels/op_types.h)
// on the GPU, for any mix of tokens and sessions (decode and prefill alike). One session's
// prefill of >= 16 tokens takes the tensor-core kernel (attention_flash.h). Everything else
// is flash-decoding style: grid = tokens x KV heads (x head chunks of <= 8 query heads) x
// context splits; each block scores its split for all query heads of its KV head (K read
// once per group), takes a split-local softmax in f32 and accumulates V. The full score
// matrix is never materialized. Scores are f32 (the CPU reference uses double: normalized
// error ~1e-6 plus the f16 storage of K/V, which both sides share).
//
// v2 (attention_decode.h; default for head_dim % 8 == 0 and <= 128, LW_CUDA_ATTN_V2=0 = the
// old kernels): ONE launch. Why: the old kernel scored one key per warp (lanes over
// head_dim) and reduced every (key, head) with a 5-shuffle chain, 16+ dependent chains per
// warp, then merged splits in a second launch (~12-14 + 3 us per mistral decode layer,
// mostly latency). v2 stages the split's K and V rows with 16-byte cp.async copies by the
// whole block into shared memory (tiles of 64 keys, two stages, rows padded by 16 bytes so
// the 8 lanes of each 16-byte phase hit distinct banks), then lane j of a warp scores key j
// of the tile for one query head (dot over head_dim from shared memory, q broadcast from
// shared memory, 4 accumulators): no shuffles in the score loop. Online softmax across the
// split's tiles; P x V from shared memory (threads own value pairs). With > 1 split each
// block writes (m, l, o) partials and bumps an arrival counter of its (token, head chunk);
// the last arrival resets it to 0 and merges the non-empty splits in split order (fixed
// order: deterministic). Splits: decode ~2 blocks per SM (a block's cost is a few dependent
// memory round trips, so short splits win until the grid fills the device; the merge reads
// 8 splits per step), >= 16 tokens up to 8 splits; >= 32 keys per split. Old path (v1):
// splits of <= 512 keys and a second kernel that merges them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_device.h"
#include "kernels/op_types.h"

namespace lw::cuda {

// A workspace (n_splits > 1) starts with this many bytes of v2 arrival counters (262,144
// counters); every plan, v1 included, puts its partials after them, so plans of different
// shapes share one workspace without a plan's partials landing on another's counters.
constexpr size_t kAttnCounterBytes = size_t{1} << 20;

struct AttentionPlan {
  int split_len = 0;  // positions per split (multiple of 32; <= 512 unless v2)
  int n_splits = 0;
  size_t workspace_bytes = 0;  // counter_bytes + the (m, l, o) partials of every split
  bool v2 = false;             // the one-launch kernel (attention_decode.h) serves it
  size_t counter_bytes = 0;    // n_splits > 1: kAttnCounterBytes (counters first)
};

// Plans a launch for n_tokens tokens whose positions are all <= max_position. The plan
// (and so the grid) depends only on these arguments: a caller that captures a CUDA graph
// passes an upper bound of max_position that changes rarely.
AttentionPlan attention_plan(int32_t n_tokens, int32_t max_position, int64_t n_heads,
                             const KvLayerView& kv, int sm_count);

// q, out: batch.n_tokens x (n_heads * kv.head_dim) f32 (out must not alias q); scores
// scaled by `scale`. `plan` from attention_plan() with max_position >= every position in
// the batch and the same n_tokens, n_heads and kv; workspace of at least
// plan.workspace_bytes whose first kAttnCounterBytes bytes are zero before the first call
// (zero-fill a new workspace); every call leaves them zero again (no call writes there but
// the v2 counters, which each launch resets). No host sync, no
// allocation: safe to capture in a CUDA graph.
void attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
               int64_t n_heads, float scale, float* out, const AttentionPlan& plan,
               void* workspace, size_t workspace_bytes, CudaStream stream);

}  // namespace lw::cuda
