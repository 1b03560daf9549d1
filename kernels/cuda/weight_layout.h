// The device layout of quantized weights and the "unit" decomposition every CUDA matmul
// kernel uses. Plain C++ (callable from host code and, through LW_HD, from CUDA kernels).
//
// Device layout (same byte count as GGUF, so VRAM for weights == GGUF bytes):
//   Q4_K, Q5_K, F16, BF16, F32: unchanged (rows of row_size(type, k) bytes; Q4_K/Q5_K
//     blocks are 144/176 bytes, 16-byte aligned).
//   Q8_0 (34-byte blocks, only 2-byte aligned in GGUF) becomes per tensor:
//     qs: int8[rows][k] | d: f16[rows][k/32]
//   Q6_K (210-byte blocks) becomes per tensor, nb = k/256 blocks per row:
//     ql: u8[rows*nb][128] | qh: u8[rows*nb][64] | scales: i8[rows*nb][16] | d: f16[rows*nb]
//
// Units: a row of k values splits into k/32 units of 32 values; a unit is what one GPU
// thread dequantizes at a time. A unit's 32 values are 8 quads of 4 consecutive columns;
// unit_quad_col() gives each quad's first column (quads are not contiguous for K-quants).
#pragma once

#include <cstdint>

#include "fragments/quant.h"

#if defined(__CUDACC__)
#define LW_HD __host__ __device__ __forceinline__
#else
#define LW_HD inline
#endif

namespace lw::cuda {

constexpr int kUnitValues = 32;
constexpr int kUnitQuads = 8;

// First column (0-based, within the row) of quad `quad` (0..7) of unit `unit` (0..k/32-1).
LW_HD int64_t unit_quad_col(GgmlType type, int64_t unit, int quad) {
  const int64_t sb = unit >> 3;  // 256-value super-block (K-quants)
  const int u = static_cast<int>(unit & 7);
  switch (type) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      // Unit u = 16 bytes qs[32c + 16h ..] of chunk c = u/2: low nibbles are columns
      // 64c + 16h + 0..15, high nibbles 64c + 32 + 16h + 0..15.
      const int c = u >> 1, h = u & 1;
      return sb * 256 + 64 * c + 16 * h + (quad < 4 ? 4 * quad : 32 + 4 * (quad - 4));
    }
    case GgmlType::Q6_K: {
      // Unit u: half n = u/4, l-group L = u%4 (l = 8L..8L+7); quad pair p = quad/2 covers
      // columns 128n + 32p + 8L + 0..7.
      const int n = u >> 2, L = u & 3, p = quad >> 1;
      return sb * 256 + 128 * n + 32 * p + 8 * L + 4 * (quad & 1);
    }
    default:
      return unit * kUnitValues + 4 * quad;
  }
}

// True for the types the CUDA kernels read: F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K.
LW_HD bool device_type_supported(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

// Byte offsets of the Q6_K sub-arrays in the device layout of a rows x k tensor.
struct Q6kOffsets {
  int64_t ql, qh, scales, d;
};
LW_HD Q6kOffsets q6k_offsets(int64_t rows, int64_t k) {
  const int64_t blocks = rows * (k / 256);
  return {0, blocks * 128, blocks * 192, blocks * 208};
}

// Rewrites a rows x k tensor from its GGUF bytes into the device layout (dst holds the
// same number of bytes; dst != src). Types with an unchanged layout are copied.
// LW_CHECKs that the type is supported and k is a multiple of the block size.
void repack_weights(GgmlType type, const void* src, int64_t rows, int64_t k, void* dst);
// The inverse (tests).
void unpack_weights(GgmlType type, const void* src, int64_t rows, int64_t k, void* dst);
// Bytes of the tensor (= its GGUF bytes).
int64_t weight_bytes(GgmlType type, int64_t rows, int64_t k);

}  // namespace lw::cuda
