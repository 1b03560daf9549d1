// The CUDA backend: Backend over one GPU. It owns a stream, a cuBLAS handle, pinned host
// staging buffers and device workspaces. Weights keep their stored encoding (Q6_K and Q8_0
// are repacked for alignment at upload, same byte count: see weight_layout.h).
//
// Ops are recorded, not launched, until a flush point (upload, download, synchronize, a
// buffer being freed). At a flush the recorded segment is (1) fused — matmuls sharing an
// input become one launch, a matmul followed by the residual add writes both results, the
// gate/up pair followed by SwiGLU runs as one kernel with the SwiGLU epilogue, RoPE of Q and
// K plus the KV write run as one kernel — and (2) run: a segment whose exact op list
// (every pointer and size) was among the last 8 eager segments is captured into a CUDA graph and
// replayed from then on while it repeats (decode steps do). Results and memory effects are
// those of running the ops one by one in call order; fused epilogues write every output
// the unfused ops would have written.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/backend.h"

namespace lw {

struct CudaBackendOptions {
  int device = 0;
  // Fuse ops at flush points (see above). Off runs every op as its own kernel(s).
  bool fuse = true;
  // Capture repeated segments into CUDA graphs and replay them.
  bool graphs = true;
  // Matmuls with at least this many tokens use dequantize + cuBLAS; fewer use the gemv
  // kernels (in chunks of 64 tokens). 17: a 32-session decode step measured 1,634 tok/s on
  // cuBLAS vs 839 on the int8 GEMV (4 passes over the weights) and 1,199 on the f16 GEMV.
  int64_t gemm_min_tokens = 17;
  // cuBLAS path: activations as two f16 planes x = hi + lo (f32-like input precision, two
  // tensor-core products) instead of one f16 rounding.
  bool gemm_split_acts = true;
  // Bytes of device workspace for dequantized weight chunks on the cuBLAS path.
  uint64_t gemm_chunk_bytes = 64ull << 20;
  // Fixed K-split for the gemv kernels (0 = choose from the device).
  int gemv_splits = 0;
  // Matmuls of Q4_K/Q5_K/Q6_K/Q8_0 weights with at most this many tokens (and fewer than
  // gemm_min_tokens) use the int8 GEMV (gemv_q8.h: exact integer weights, activations as two
  // int8 planes, dp4a) in chunks of 8 tokens; 0 turns it off (f32/f16 GEMV kernels instead).
  int64_t int8_gemv_max_tokens = 16;
  // Q4_K/Q6_K matmuls with at most this many tokens (any gemm_min_tokens) use the int8 GEMV
  // on tensor cores (gemv_q8_mma.cuh) in chunks of 32 tokens: one pass over the weights
  // serves a 32-session decode step. Larger batches (prefill) use cuBLAS.
  int64_t int8_mma_max_tokens = 64;
};

// Options from the environment, for experiments without a rebuild (tools' main() may also
// build options themselves): LW_CUDA_FUSE=0|1, LW_CUDA_GRAPHS=0|1,
// LW_CUDA_GEMM_MIN_TOKENS=N, LW_CUDA_GEMV_SPLITS=N, LW_CUDA_GEMM_SPLIT_ACTS=0|1,
// LW_CUDA_INT8_GEMV_MAX_TOKENS=N, LW_CUDA_INT8_MMA_MAX_TOKENS=N. Read by the kernels
// themselves: LW_CUDA_GEMV_Q8_ROWS=2|4 (dp4a int8 GEMV rows per warp), LW_CUDA_GEMV_MMA=0|1|2
// (Q4_K/Q6_K int8 GEMV on tensor cores: never, for 9+ tokens, always), LW_CUDA_MMA_SPLITS=N
// (its K split), LW_CUDA_FLASH_ATTN=0|1 (tensor-core prefill attention),
// LW_CUDA_ATTN_V2=0|1 (one-launch decode attention),
// LW_CUDA_GEMV_SMALL=0|1, LW_CUDA_GEMV_SMALL_CFG=N, LW_CUDA_DEQUANT_V2=0|1. Unset
// variables keep the defaults.
CudaBackendOptions cuda_backend_options_from_env(int device);

// Throws LW-BACKEND-001 when no CUDA device `device` exists (the message says why), and
// LW-BACKEND-002 when the device fails to initialize.
std::unique_ptr<Backend> make_cuda_backend(int device);
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options);

}  // namespace lw
