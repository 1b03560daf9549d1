// Tensor-core causal attention for a prefill of one session (flash-attention style) over the
// paged f16 KV cache (layout in kernels/op_types.h); cuda::attention() dispatches here.
//
// Grid: (tiles of up to 64 consecutive query tokens, query heads); 4 warps per CTA, 16 query
// rows per warp. Each CTA walks the keys 0..(last position of its tile) in tiles of 64,
// gathered from the paged cache through the session's block table into shared memory with
// cp.async (two stages), computes S = Q K^T and O += P V with mma.m16n8k16 (f16 x f16 ->
// f32) and an online softmax (running max and sum in f32, exp2 domain). The full score
// matrix is never materialized. Precision: K and V are f16 already (exact); Q (scaled) and
// the probabilities P are f32 split into two f16 planes hi = f16(x), lo = f16(x - hi), each
// product issued twice, so the only roundings are the ~2^-22 of the split and the f32
// accumulations (normalized error vs attention_ref ~1e-6, same order as the old kernel).
//
// Eligibility is host-known: the batch must carry AttentionBatch::one_session_run (set by
// the engine for single-session batches), >= kFlashMinTokens tokens, head_dim 32, 64 or 128
// (tiny presets, mistral, magistral) and 16-byte aligned K/V pools. Each CTA re-checks its
// tile on the device (same table offset, consecutive positions); a tile that fails takes a
// correct scalar path, so a wrong flag costs speed, never correctness. So does a tile with a
// scaled query value beyond f16's range (|q * scale * log2 e| > 60000; the hi plane would
// overflow).
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_device.h"
#include "kernels/op_types.h"

namespace lw::cuda {

constexpr int32_t kFlashMinTokens = 16;

// LW_CUDA_FLASH_ATTN: unset, "" or "1" -> true; "0" -> false; anything else throws
// lw::Error LW-CLI-001 naming the value. parse_* takes the raw value (nullptr = unset);
// *_from_env reads the environment once per process.
bool parse_flash_attention_env(const char* value);
bool flash_attention_enabled_from_env();

// True when flash_attention() serves this call (`enabled`: the environment switch).
bool flash_attention_eligible(const KvLayerView& kv, const AttentionBatch& batch,
                              int64_t n_heads, const float* q, const float* out, bool enabled);

// q, out: batch.n_tokens x (n_heads * kv.head_dim) f32 (out must not alias q); scores
// scaled by `scale`. Requires flash_attention_eligible(..., true) (LW-BACKEND check otherwise).
void flash_attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                     int64_t n_heads, float scale, float* out, CudaStream stream);

// Number of flash_attention() launches in this process (tests observe the dispatch).
uint64_t flash_attention_launch_count();

}  // namespace lw::cuda
