// Prefill matrix products (many tokens) and weight dequantization on the GPU. gemm()
// dequantizes the weight to f16 in row chunks into the caller's workspace (no dequantized
// copy outlives the call), converts the activations to f16 and multiplies on the tensor
// cores through cuBLAS (f16 inputs, f32 accumulation and output). F16 weights are used in
// place; F32 weights go through an f32 cuBLAS product. Activations travel as x = hi + lo
// (two f16 planes, GemmArgs::split_acts) unless told otherwise. The dequantize_* launchers read the
// device layout of weight_layout.h: dequantize_f32 reproduces the CPU reference dequantizer
// bit for bit; dequantize_f16 is what the tensor-core paths see.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fragments/quant.h"
#include "kernels/cuda/cuda_device.h"

namespace lw::cuda {

// A cuBLAS handle (cublasHandle_t as void*), with `workspace_bytes` of cuBLAS workspace
// carved from `workspace` (set so the handle is safe to use under stream capture).
void* cublas_create();
void cublas_destroy(void* handle) noexcept;
void cublas_set_workspace(void* handle, void* workspace, size_t bytes);

// out[i * ldo + c] = W[row_i][c] for i in [0, n_rows); row_i = row_ids[i] when row_ids (a
// device int32 array) is given, else r0 + i. Exact (matches dequantize_row bit for bit).
void dequantize_f32(GgmlType type, const void* w, int64_t rows, int64_t k,
                    const int32_t* row_ids, int64_t r0, int64_t n_rows, float* out, int64_t ldo,
                    CudaStream stream);
// Which dequantize_f16 kernel runs. kV1: one thread per 32-value unit, 8-byte stores at
// scattered columns. kV2: the same per-unit math, staged through shared memory so a block
// writes its contiguous run of the output with 16-byte stores contiguous across the block.
// Both produce identical bytes (tests/unit/cuda/cuda_dequant_v2_test.cpp). kEnv reads
// LW_CUDA_DEQUANT_V2 once: unset or "1" = v2, "0" = v1, anything else = kCliArgument.
enum class DequantKernel { kEnv, kV1, kV2 };
// The same into f16 (the values the tensor-core kernels multiply with; within one f16
// rounding of the exact values plus the rounding of the per-block scales to f16).
// `out` must be 8-byte aligned (LW_CHECK); any ldo >= k.
void dequantize_f16(GgmlType type, const void* w, int64_t rows, int64_t k, int64_t r0,
                    int64_t n_rows, uint16_t* out, int64_t ldo, CudaStream stream,
                    DequantKernel kernel = DequantKernel::kEnv);
// y[t * k + c] = f16(x[t * ldx + c]) for n_tok rows of k values.
void convert_f32_to_f16(const float* x, int64_t ldx, int64_t n_tok, int64_t k, uint16_t* y,
                        CudaStream stream);

struct GemmArgs {
  GgmlType type = GgmlType::F32;
  const void* w = nullptr;  // rows x k, device layout
  int64_t rows = 0;
  int64_t k = 0;
  const float* x = nullptr;  // n_tok x k at stride ldx
  int64_t ldx = 0;
  int64_t n_tok = 0;
  float* y = nullptr;  // y[t * ldy + r]
  int64_t ldy = 0;
  // Activations as two f16 planes x = hi + lo (two tensor-core products, f32-like input
  // precision); false rounds them to f16 once (one product, ~2x faster, ~3e-4 more error).
  bool split_acts = true;
};

// Workspace gemm needs to process the weight in chunks of up to `chunk_rows` rows
// (0 = all rows at once).
size_t gemm_workspace_bytes(GgmlType type, int64_t rows, int64_t k, int64_t n_tok,
                            int64_t chunk_rows = 0, bool split_acts = true);
// y = W x for any n_tok >= 1. Uses as large a row chunk as the workspace allows (at least
// 64 rows, or all rows when fewer: LW_CHECK otherwise).
void gemm(const GemmArgs& a, void* cublas, void* workspace, size_t workspace_bytes,
          CudaStream stream);

}  // namespace lw::cuda
