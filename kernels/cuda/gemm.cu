#include "kernels/cuda/gemm.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dequant.cuh"

namespace lw::cuda {
namespace {

constexpr int kThreads = 256;

size_t align256(size_t v) { return (v + 255) / 256 * 256; }

template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
    dequant_f32_kernel(dq::WeightView wv, const int32_t* row_ids, int64_t r0, int64_t n_rows,
                       float* out, int64_t ldo) {
  using U = dq::Unit<T>;
  const int64_t units = wv.k / 32;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= n_rows * units) return;
  const int64_t i = idx / units, unit = idx - i * units;
  const int64_t row = row_ids != nullptr ? row_ids[i] : r0 + i;
  const typename U::Raw raw = U::load(wv, row, unit);
  float v[32];
  U::dequant_f32(raw, unit, v);
  float* dst = out + i * ldo;
#pragma unroll
  for (int q = 0; q < 8; ++q) {
    const int64_t c = unit_quad_col(T, unit, q);
#pragma unroll
    for (int e = 0; e < 4; ++e) dst[c + e] = v[4 * q + e];
  }
}

template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
    dequant_f16_kernel(dq::WeightView wv, int64_t r0, int64_t n_rows, uint16_t* out,
                       int64_t ldo) {
  using U = dq::Unit<T>;
  const int64_t units = wv.k / 32;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= n_rows * units) return;
  const int64_t i = idx / units, unit = idx - i * units;
  const typename U::Raw raw = U::load(wv, r0 + i, unit);
  uint32_t h[16];
  U::dequant_h2(raw, unit, h);
  uint16_t* dst = out + i * ldo;
#pragma unroll
  for (int q = 0; q < 8; ++q) {
    // h[2q] = (c, c+2), h[2q+1] = (c+1, c+3) -> columns c..c+3 in order.
    const uint2 v = make_uint2(__byte_perm(h[2 * q], h[2 * q + 1], 0x5410),
                               __byte_perm(h[2 * q], h[2 * q + 1], 0x7632));
    const int64_t c = unit_quad_col(T, unit, q);
    if (((i * ldo + c) & 3) == 0) {
      *reinterpret_cast<uint2*>(dst + c) = v;
    } else {
      dst[c] = static_cast<uint16_t>(v.x);
      dst[c + 1] = static_cast<uint16_t>(v.x >> 16);
      dst[c + 2] = static_cast<uint16_t>(v.y);
      dst[c + 3] = static_cast<uint16_t>(v.y >> 16);
    }
  }
}

// v2: thread t of a block dequantizes flat unit idx = blockIdx.x * kThreads + t exactly as
// v1, but writes its 32 values into a shared tile at their position in the block's
// contiguous run of row-major output values (flat value f = i * k + c). A K-quant unit's
// quads stay inside its 256-value super-block, whose 8 units are 8 aligned threads of the
// same block (k % 256 == 0, kThreads % 8 == 0), so the tile holds exactly values
// [blockIdx.x * kThreads * 32, + kThreads * 32). The tile is then written out in 8-value
// (16-byte) pieces, consecutive threads on consecutive pieces. Every 32 staged values are
// followed by kV2Pad halves of padding (spreads the 8-byte tile stores over the banks).
constexpr int kV2Pad = 4;
constexpr int kV2Tile = kThreads * (32 + kV2Pad);

__device__ __forceinline__ int v2_slot(int p) { return p + (p >> 5) * kV2Pad; }

template <GgmlType T>
__global__ void __launch_bounds__(kThreads)
    dequant_f16_v2_kernel(dq::WeightView wv, int64_t r0, int64_t n_rows, uint16_t* out,
                          int64_t ldo) {
  using U = dq::Unit<T>;
  __shared__ __align__(16) uint16_t tile[kV2Tile];
  const int64_t units = wv.k / 32;
  const int64_t total = n_rows * units;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kThreads;
  const int t = static_cast<int>(threadIdx.x);
  const int64_t idx = base + t;
  if (idx < total) {
    const int64_t i = idx / units, unit = idx - i * units;
    const typename U::Raw raw = U::load(wv, r0 + i, unit);
    uint32_t h[16];
    U::dequant_h2(raw, unit, h);
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const uint2 v = make_uint2(__byte_perm(h[2 * q], h[2 * q + 1], 0x5410),
                                 __byte_perm(h[2 * q], h[2 * q + 1], 0x7632));
      const int p = t * 32 + static_cast<int>(unit_quad_col(T, unit, q) - unit * 32);
      *reinterpret_cast<uint2*>(tile + v2_slot(p)) = v;
    }
  }
  __syncthreads();
  const int64_t left = total - base;
  const int n_vals = static_cast<int>(left < kThreads ? left : kThreads) * 32;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int p = 8 * (t + r * kThreads);
    if (p >= n_vals) break;
    const uint16_t* s = tile + v2_slot(p);
    const uint2 a = *reinterpret_cast<const uint2*>(s);
    const uint2 b = *reinterpret_cast<const uint2*>(s + 4);
    const int64_t f = base * 32 + p;
    const int64_t i = f / wv.k, c = f - i * wv.k;
    uint16_t* dst = out + i * ldo + c;
    if ((reinterpret_cast<uintptr_t>(dst) & 15) == 0) {
      *reinterpret_cast<uint4*>(dst) = make_uint4(a.x, a.y, b.x, b.y);
    } else {
      const uint32_t w[4] = {a.x, a.y, b.x, b.y};
#pragma unroll
      for (int e = 0; e < 8; ++e) dst[e] = static_cast<uint16_t>(w[e >> 1] >> (16 * (e & 1)));
    }
  }
}

bool dequant_v2_from_env() {
  static const bool v2 = [] {
    const char* v = std::getenv("LW_CUDA_DEQUANT_V2");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "1") == 0) return true;
    if (std::strcmp(v, "0") == 0) return false;
    throw Error(ErrorCode::kCliArgument, std::string("environment variable LW_CUDA_DEQUANT_V2=\"") +
                                             v + "\" is not 0 or 1");
  }();
  return v2;
}

// y[idx] = f16(x); with lo != nullptr also lo[idx] = f16(x - f16(x)) (x = hi + lo).
__global__ void convert_kernel(const float* x, int64_t ldx, int64_t n_tok, int64_t k,
                               __half* y, __half* lo) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= n_tok * k) return;
  const int64_t t = idx / k, c = idx - t * k;
  const float v = x[t * ldx + c];
  const __half h = __float2half_rn(v);
  y[idx] = h;
  if (lo != nullptr) lo[idx] = __float2half_rn(v - __half2float(h));
}

dq::WeightView view_of(GgmlType type, const void* w, int64_t rows, int64_t k) {
  return dq::WeightView{static_cast<const uint8_t*>(w), rows, k, weight_bytes(type, 1, k)};
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void check_dequant_args(GgmlType type, int64_t rows, int64_t k, const char* what) {
  LW_CHECK(device_type_supported(type) && rows >= 1 && k >= 32 && k % 32 == 0 &&
               (k % 256 == 0 || (type != GgmlType::Q4_K && type != GgmlType::Q5_K &&
                                 type != GgmlType::Q6_K)),
           std::string(what) + ": type " + type_name(static_cast<uint32_t>(type)) +
               " rows=" + std::to_string(rows) + " k=" + std::to_string(k));
}

}  // namespace

void* cublas_create() {
  cublasHandle_t h = nullptr;
  LW_CUBLAS_CHECK(cublasCreate(&h));
  return h;
}

void cublas_destroy(void* handle) noexcept {
  if (handle != nullptr) cublasDestroy(static_cast<cublasHandle_t>(handle));
}

void cublas_set_workspace(void* handle, void* workspace, size_t bytes) {
  LW_CUBLAS_CHECK(cublasSetWorkspace(static_cast<cublasHandle_t>(handle), workspace, bytes));
}

void dequantize_f32(GgmlType type, const void* w, int64_t rows, int64_t k,
                    const int32_t* row_ids, int64_t r0, int64_t n_rows, float* out, int64_t ldo,
                    CudaStream stream) {
  check_dequant_args(type, rows, k, "dequantize_f32");
  if (n_rows <= 0) return;
  LW_CHECK(row_ids != nullptr || (r0 >= 0 && r0 + n_rows <= rows), "dequantize_f32: row range");
  const dq::WeightView wv = view_of(type, w, rows, k);
  const unsigned blocks = blocks_for(n_rows * (k / 32));
  const cudaStream_t s = to_stream(stream);
#define LW_DQ32(TY)                                                                     \
  case TY:                                                                              \
    dequant_f32_kernel<TY><<<blocks, kThreads, 0, s>>>(wv, row_ids, r0, n_rows, out, ldo); \
    break;
  switch (type) {
    LW_DQ32(GgmlType::Q4_K)
    LW_DQ32(GgmlType::Q5_K)
    LW_DQ32(GgmlType::Q6_K)
    LW_DQ32(GgmlType::Q8_0)
    LW_DQ32(GgmlType::F16)
    LW_DQ32(GgmlType::BF16)
    LW_DQ32(GgmlType::F32)
    default: break;
  }
#undef LW_DQ32
  LW_CUDA_LAUNCH_CHECK("dequant_f32_kernel");
}

void dequantize_f16(GgmlType type, const void* w, int64_t rows, int64_t k, int64_t r0,
                    int64_t n_rows, uint16_t* out, int64_t ldo, CudaStream stream,
                    DequantKernel kernel) {
  check_dequant_args(type, rows, k, "dequantize_f16");
  if (n_rows <= 0) return;
  LW_CHECK(r0 >= 0 && r0 + n_rows <= rows, "dequantize_f16: row range");
  LW_CHECK((reinterpret_cast<uintptr_t>(out) & 7) == 0 && ldo >= k,
           "dequantize_f16: out must be 8-byte aligned with ldo >= k (ldo=" +
               std::to_string(ldo) + ")");
  const dq::WeightView wv = view_of(type, w, rows, k);
  const unsigned blocks = blocks_for(n_rows * (k / 32));
  const cudaStream_t s = to_stream(stream);
  const bool v2 = kernel == DequantKernel::kEnv ? dequant_v2_from_env()
                                                : kernel == DequantKernel::kV2;
#define LW_DQ16(TY)                                                                     \
  case TY:                                                                              \
    if (v2) {                                                                           \
      dequant_f16_v2_kernel<TY><<<blocks, kThreads, 0, s>>>(wv, r0, n_rows, out, ldo);  \
    } else {                                                                            \
      dequant_f16_kernel<TY><<<blocks, kThreads, 0, s>>>(wv, r0, n_rows, out, ldo);     \
    }                                                                                   \
    break;
  switch (type) {
    LW_DQ16(GgmlType::Q4_K)
    LW_DQ16(GgmlType::Q5_K)
    LW_DQ16(GgmlType::Q6_K)
    LW_DQ16(GgmlType::Q8_0)
    LW_DQ16(GgmlType::F16)
    LW_DQ16(GgmlType::BF16)
    LW_DQ16(GgmlType::F32)
    default: break;
  }
#undef LW_DQ16
  LW_CUDA_LAUNCH_CHECK("dequant_f16_kernel");
}

void convert_f32_to_f16(const float* x, int64_t ldx, int64_t n_tok, int64_t k, uint16_t* y,
                        CudaStream stream) {
  if (n_tok <= 0 || k <= 0) return;
  convert_kernel<<<blocks_for(n_tok * k), kThreads, 0, to_stream(stream)>>>(
      x, ldx, n_tok, k, reinterpret_cast<__half*>(y), nullptr);
  LW_CUDA_LAUNCH_CHECK("convert_kernel");
}

size_t gemm_workspace_bytes(GgmlType type, int64_t rows, int64_t k, int64_t n_tok,
                            int64_t chunk_rows, bool split_acts) {
  if (type == GgmlType::F32) return 0;
  const size_t x16 = align256(static_cast<size_t>(n_tok) * k * 2 * (split_acts ? 2 : 1));
  if (type == GgmlType::F16) return x16;
  const int64_t chunk = chunk_rows > 0 ? std::min(chunk_rows, rows) : rows;
  return x16 + align256(static_cast<size_t>(chunk) * k * 2);
}

void gemm(const GemmArgs& a, void* cublas, void* workspace, size_t workspace_bytes,
          CudaStream stream) {
  LW_CHECK(a.rows >= 1 && a.k >= 1 && a.n_tok >= 1 && a.ldx >= a.k && a.ldy >= a.rows,
           "gemm: rows=" + std::to_string(a.rows) + " k=" + std::to_string(a.k) +
               " n_tok=" + std::to_string(a.n_tok));
  auto* h = static_cast<cublasHandle_t>(cublas);
  LW_CUBLAS_CHECK(cublasSetStream(h, to_stream(stream)));
  const float one = 1.0f, zero = 0.0f;
  const int m = static_cast<int>(a.rows), n = static_cast<int>(a.n_tok), k = static_cast<int>(a.k);
  if (a.type == GgmlType::F32) {
    LW_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, a.w, CUDA_R_32F, k,
                                 a.x, CUDA_R_32F, static_cast<int>(a.ldx), &zero, a.y,
                                 CUDA_R_32F, static_cast<int>(a.ldy), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
    return;
  }
  const size_t plane = static_cast<size_t>(a.n_tok) * a.k;
  const size_t x16_bytes = align256(plane * 2 * (a.split_acts ? 2 : 1));
  LW_CHECK(workspace != nullptr && workspace_bytes >= x16_bytes,
           "gemm: workspace of " + std::to_string(workspace_bytes) + " bytes < " +
               std::to_string(x16_bytes) + " for the f16 activations");
  auto* x16 = static_cast<uint16_t*>(workspace);
  uint16_t* x16_lo = a.split_acts ? x16 + plane : nullptr;
  convert_kernel<<<blocks_for(a.n_tok * a.k), kThreads, 0, to_stream(stream)>>>(
      a.x, a.ldx, a.n_tok, a.k, reinterpret_cast<__half*>(x16),
      reinterpret_cast<__half*>(x16_lo));
  LW_CUDA_LAUNCH_CHECK("convert_kernel");
  // y = W x_hi (+ W x_lo): the second product accumulates into y (beta = 1).
  auto products = [&](const void* w16, int rows, float* y) {
    LW_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, k, &one, w16, CUDA_R_16F,
                                 k, x16, CUDA_R_16F, k, &zero, y, CUDA_R_32F,
                                 static_cast<int>(a.ldy), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
    if (x16_lo != nullptr) {
      LW_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, k, &one, w16,
                                   CUDA_R_16F, k, x16_lo, CUDA_R_16F, k, &one, y, CUDA_R_32F,
                                   static_cast<int>(a.ldy), CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
    }
  };
  if (a.type == GgmlType::F16) {
    products(a.w, m, a.y);
    return;
  }
  auto* w16 = reinterpret_cast<uint16_t*>(static_cast<uint8_t*>(workspace) + x16_bytes);
  const int64_t room_rows = static_cast<int64_t>((workspace_bytes - x16_bytes) / (a.k * 2));
  int64_t chunk = std::min(a.rows, room_rows >= 64 ? room_rows / 64 * 64 : room_rows);
  LW_CHECK(chunk >= std::min<int64_t>(a.rows, 64),
           "gemm: workspace of " + std::to_string(workspace_bytes) + " bytes holds " +
               std::to_string(room_rows) + " dequantized rows of " + std::to_string(a.k));
  for (int64_t r0 = 0; r0 < a.rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, a.rows - r0);
    dequantize_f16(a.type, a.w, a.rows, a.k, r0, nr, w16, a.k, stream);
    products(w16, static_cast<int>(nr), a.y + r0);
  }
}

}  // namespace lw::cuda
