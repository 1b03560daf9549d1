// The int8 decode GEMV: quantized weights (Q4_K, Q5_K, Q6_K, Q8_0) times activations held
// as two int8 planes per value (x ~ dl * (254 hi + lo), dl per 32 values: ~15 bits, error
// <= amax / 64516; act_q8x2.cuh), dotted with dp4a (four int8 products per instruction,
// exact int32 sums); scales, mins and the 16-value activation sums apply in f32. The weights
// are used exactly as stored, so the normalized error vs the exact f32 reference is ~1e-5.
// Persistent grid: each warp serves row groups of R rows (R / 2 gate/up row pairs in SwiGLU
// mode) one after another, lanes over 32-value slots of the row (16 for Q8_0) with 16-byte
// loads that bypass L1, the next slot's weights always in flight (also across row groups).
// Epilogues as gemv(): residual add, SwiGLU pair; optionally the RMSNorm in front is fused.
// Activations: for n_tok * act_stride <= kGemvQ8StageBytes each block quantizes x into
// shared memory itself (no extra launch); larger calls quantize once into the workspace.
// Q4_K and Q6_K calls of more than kGemvQ8MaxTokens tokens run on tensor cores instead
// (gemv_q8_mma.cuh: mma.sync, 16 rows x 4 tokens x both planes per instruction, 64-row tiles
// sharing each super-block's activations, up to kGemvQ8MmaMaxTokens tokens per launch);
// LW_CUDA_GEMV_MMA=0 keeps them on dp4a (8 per launch), =2 sends every Q4_K / Q6_K call there.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/gemv.h"

namespace lw::cuda {

constexpr int kGemvQ8MaxTokens = 8;             // tokens per dp4a launch (callers chunk larger n)
constexpr int kGemvQ8MmaMaxTokens = 32;         // tokens per tensor-core launch
constexpr size_t kGemvQ8StageBytes = 40 << 10;  // <= 48 KiB: no shared-memory opt-in

// Which kernel gemv_q8 runs: kAuto = as described above; the others force one (kMma only for
// Q4_K / Q6_K).
enum class GemvQ8Kernel { kAuto, kDp4a, kMma };

// Tokens one launch takes for this type with this kernel choice: kGemvQ8MmaMaxTokens where
// tensor cores may run it, else kGemvQ8MaxTokens.
int gemv_q8_max_tokens(GgmlType type, GemvQ8Kernel kernel = GemvQ8Kernel::kAuto);

// True for Q4_K / Q5_K / Q6_K with k % 256 == 0 and Q8_0 with k % 32 == 0,
// 1 <= n_tok <= gemv_q8_max_tokens(type, kernel).
bool gemv_q8_supported(GgmlType type, int64_t k, int n_tok,
                       GemvQ8Kernel kernel = GemvQ8Kernel::kAuto);

// Bytes of one token's quantized activations (act_q8x2.cuh), a multiple of 16:
//   int8 hi[k] | int8 lo[k] | f32 dl[k / 32] | f32 xsum[k / 16]
int64_t gemv_q8_act_stride(int64_t k);

// Device workspace gemv_q8 needs for this call of these matrices: 0 when the dp4a kernel's
// blocks quantize in shared memory, else the quantized activations (n_tok *
// gemv_q8_act_stride(k)), plus on tensor cores the K-split counters and partial sums.
size_t gemv_q8_workspace_bytes(const GemvMatrix* mats, int n_mats, int64_t k, int n_tok,
                               int sm_count, GemvQ8Kernel kernel = GemvQ8Kernel::kAuto);

// Quantizes n_tok rows of x (stride ldx floats, 16-byte aligned, k % 32 == 0) into `out`
// (n_tok * gemv_q8_act_stride(k) bytes, 16-byte aligned; the layout above).
void quantize_act_q8(const float* x, int64_t ldx, int64_t k, int n_tok, void* out,
                     CudaStream stream);

// The tensor-core kernel's activations (act_q8x2.cuh, super-block format), bytes per token:
//   int8 hi[k] | int8 lo[k] | f32 dl[k / 256] in 16-byte slots ([0] used)
// with x[j] ~ dl[j / 256] * (254 hi[j] + lo[j]), error at most dl / 2 = amax / 64516 of the
// 256 values.
int64_t gemv_q8_sb_stride(int64_t k);

struct GemvQ8Norm;
// Quantizes n_tok rows of x (stride ldx floats, 16-byte aligned, k % 256 == 0) into `out`
// (n_tok * gemv_q8_sb_stride(k) bytes, 16-byte aligned); with norm, the RMSNorm first (and
// norm->out, stride ldx, receives the normalized rows when set).
void quantize_act_q8_sb(const float* x, int64_t ldx, int64_t k, int n_tok, void* out,
                        CudaStream stream, const GemvQ8Norm* norm = nullptr);

// RMSNorm fused in front of the product: the matrices multiply y = (x * s) * weight with
// s = 1 / sqrt(mean(x^2) + eps) per token (x is the raw input), and `out` (when set, stride
// ldx) receives y as the rms_norm op would (written by one block; out must not overlap x).
struct GemvQ8Norm {
  const float* weight = nullptr;  // k floats, 16-byte aligned
  float eps = 0.f;
  float* out = nullptr;
};
// True when gemv_q8 can take a GemvQ8Norm for this call (activations staged in shared
// memory: no workspace; at most kGemvQ8MaxTokens tokens).
bool gemv_q8_can_fuse_norm(GgmlType type, int64_t k, int n_tok,
                           GemvQ8Kernel kernel = GemvQ8Kernel::kAuto);

// True when a group of `a` matrices followed by `b` matrices (same input) can run as one
// launch: Q4_K then Q6_K (the Q/K and V projections of a Q4_K_M layer).
bool gemv_q8_pair_supported(GgmlType a, GgmlType b, int64_t k, int n_tok,
                            GemvQ8Kernel kernel = GemvQ8Kernel::kAuto);

struct GemvQ8Options {
  GemvQ8Kernel kernel = GemvQ8Kernel::kAuto;
  // dp4a: rows per warp, 2 or 4 (0 = 4 for 1-2 tokens, 2 for more, or LW_CUDA_GEMV_Q8_ROWS).
  int rows_per_warp = 0;
  const GemvQ8Norm* norm = nullptr;  // optional fused RMSNorm (gemv_q8_can_fuse_norm)
};

// Same contract as gemv() for 1 <= n_tok <= gemv_q8_max_tokens(type) and a supported type (or
// a supported pair of types: the first type's matrices first, no epilogue on them); workspace
// (256-byte aligned) of at least gemv_q8_workspace_bytes(mats, n_mats, k, n_tok, sm_count).
void gemv_q8(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx, int n_tok,
             const GemvSwiglu* swiglu, void* workspace, size_t workspace_bytes, int sm_count,
             CudaStream stream, const GemvQ8Options& opt = {});

}  // namespace lw::cuda
