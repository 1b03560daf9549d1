// The one-launch split attention kernel ("v2") behind cuda::attention() (kernels/cuda/
// attention.h holds the design notes): staged K/V tiles in shared memory, one key per lane,
// split partials merged in a fixed order by the last block of each (token, head chunk).
// Internal to kernels/cuda: attention.cu plans and dispatches through these functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/op_types.h"

namespace lw::cuda {

constexpr int32_t kAttnV2MaxHeadDim = 128;

// LW_CUDA_ATTN_V2: unset, "" or "1" -> true; "0" -> false (the old split + combine kernels);
// anything else throws lw::Error LW-CLI-001 naming the value. parse_* takes the raw value
// (nullptr = unset); *_from_env reads the environment once per process.
bool parse_attention_v2_env(const char* value);
bool attention_v2_enabled_from_env();

// Shapes the v2 kernel serves: head_dim a multiple of 8 and <= kAttnV2MaxHeadDim, K and V
// pools 16-byte aligned (16-byte cp.async rows).
bool attention_v2_eligible(const KvLayerView& kv);

// The v2 plan (plan.v2 = true). Same contract as attention_plan().
AttentionPlan attention_v2_plan(int32_t n_tokens, int32_t max_position, int64_t n_heads,
                                const KvLayerView& kv, int sm_count);

// Requires plan.v2 and attention_v2_eligible(kv); workspace as documented in attention.h.
void attention_v2(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                  int64_t n_heads, float scale, float* out, const AttentionPlan& plan,
                  void* workspace, size_t workspace_bytes, CudaStream stream);

}  // namespace lw::cuda
