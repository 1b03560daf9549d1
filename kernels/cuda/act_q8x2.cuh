// Internal to kernels/cuda: activations as two int8 planes ("q8x2") for the int8 GEMV, and the
// warp-level quantizers (with an optional RMSNorm in front). Two formats: the dp4a kernel's
// below (one dl per 32 values, with 16-value sums; used by the stand-alone quantize kernel
// and the GEMV's shared-memory staging), and the tensor-core kernel's super-block format
// (quant_chunk_sb: one dl per 256 values). Layout per token of the first (gemv_q8.h):
//   int8 hi[k] | int8 lo[k] | f32 dl[k/32] | f32 xsum[k/16]
// with x[j] ~ dl[j/32] * (254 * hi[j] + lo[j]): per 32 values dl = amax / (127 * 254),
// hi = round(x / (254 dl)), lo = round((x - 254 dl hi) / dl), both in [-127, 127], so the
// representation error is at most dl / 2 = amax / 64516 (~15 bits); xsum = dl * the sum of
// (254 hi + lo) over each 16 values, the sum of the represented values (for the K-quant mins
// and Q6_K's -32 offset, so they cancel against the same values the quants multiply).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lw::cuda::q8x2 {

struct TokOut {
  int8_t* hi;
  int8_t* lo;
  float* dl;
  float* xsum;
};
__device__ __forceinline__ TokOut tok_out(uint8_t* tok, int64_t k) {
  return {reinterpret_cast<int8_t*>(tok), reinterpret_cast<int8_t*>(tok + k),
          reinterpret_cast<float*>(tok + 2 * k), reinterpret_cast<float*>(tok + 2 * k + k / 8)};
}

// Read side (shared or global memory).
struct Tok {
  const uint8_t* p;
  __device__ __forceinline__ int4 hi16(int64_t col) const {
    return *reinterpret_cast<const int4*>(p + col);
  }
  __device__ __forceinline__ int4 lo16(int64_t col, int64_t k) const {
    return *reinterpret_cast<const int4*>(p + k + col);
  }
  __device__ __forceinline__ float dl(int64_t col, int64_t k) const {
    return reinterpret_cast<const float*>(p + 2 * k)[col >> 5];
  }
  __device__ __forceinline__ float xsum(int64_t col, int64_t k) const {
    return reinterpret_cast<const float*>(p + 2 * k + k / 8)[col >> 4];
  }
};

// Optional RMSNorm in front: v = (x * scale) * w, stored to out when out != nullptr.
struct NormArgs {
  const float* w = nullptr;  // norm weight (indexed by column)
  float scale = 0.f;         // 1 / sqrt(mean(x^2) + eps) of this token
  float* out = nullptr;      // this token's normalized row, or nullptr
};

__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *reinterpret_cast<const float4*>(p + 4);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ uint32_t pack4(const int* q) {
  return (q[0] & 0xFF) | ((q[1] & 0xFF) << 8) | ((q[2] & 0xFF) << 16) |
         (static_cast<uint32_t>(q[3] & 0xFF) << 24);
}

// Loads this lane's 8 values (columns col .. col + 7; zeros past k), the RMSNorm applied
// when nrm.w is set (and the normalized values stored to nrm.out when that is set).
__device__ __forceinline__ bool load_lane(const float* row, int64_t col, int64_t k,
                                          const NormArgs& nrm, float (&v)[8]) {
  if (col >= k) {
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = 0.f;
    return false;
  }
  load8(row + col, v);
  if (nrm.w != nullptr) {
    float w[8];
    load8(nrm.w + col, w);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = __fmul_rn(__fmul_rn(v[j], nrm.scale), w[j]);
    if (nrm.out != nullptr) {
      *reinterpret_cast<float4*>(nrm.out + col) = make_float4(v[0], v[1], v[2], v[3]);
      *reinterpret_cast<float4*>(nrm.out + col + 4) = make_float4(v[4], v[5], v[6], v[7]);
    }
  }
  return true;
}

// The two planes of 8 values of a block whose largest magnitude is amax; returns dl.
__device__ __forceinline__ float split_planes(const float (&v)[8], float amax, int (&hi)[8],
                                              int (&lo)[8]) {
  // dl = amax / 32258; hi steps are 254 dl = amax / 127.
  const float dl = amax / 32258.0f;
  const float inv_hi = amax > 0.f ? 127.0f / amax : 0.f;
  const float inv_lo = amax > 0.f ? 32258.0f / amax : 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const float h = fminf(127.f, fmaxf(-127.f, rintf(v[j] * inv_hi)));
    const float r = fmaf(-254.0f * dl, h, v[j]);  // the remainder, |r| <= 127 dl (+ rounding)
    hi[j] = static_cast<int>(h);
    lo[j] = static_cast<int>(fminf(127.f, fmaxf(-127.f, rintf(r * inv_lo))));
  }
  return dl;
}

// The warp quantizes columns c0 .. c0 + 255 of one token (row = the token's x, indexed by
// column); columns >= k are skipped (k % 32 == 0). Lane l holds columns c0 + 8l .. + 7, so a
// 32-value block is four lanes and a 16-value sum two.
__device__ __forceinline__ void quant_chunk(const float* row, int64_t c0, int64_t k,
                                            const TokOut& o, int lane, const NormArgs& nrm) {
  const int64_t col = c0 + 8 * lane;
  float v[8];
  const bool valid = load_lane(row, col, k, nrm, v);
  float amax = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(v[j]));
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
  amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
  int hi[8], lo[8];
  const float dl = split_planes(v, amax, hi, lo);
  // The 16-value sums of the represented values (not of x): the K-quant mins and Q6_K's -32
  // then cancel against the same activations the quants are dotted with.
  int isum = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) isum += 254 * hi[j] + lo[j];
  isum += __shfl_xor_sync(0xffffffffu, isum, 1);
  if (!valid) return;
  *reinterpret_cast<uint2*>(o.hi + col) = make_uint2(pack4(hi), pack4(hi + 4));
  *reinterpret_cast<uint2*>(o.lo + col) = make_uint2(pack4(lo), pack4(lo + 4));
  if ((lane & 3) == 0) o.dl[col >> 5] = dl;
  if ((lane & 1) == 0) o.xsum[col >> 4] = dl * static_cast<float>(isum);
}

// The "super-block" variant of the tensor-core GEMV (gemv_q8_mma.cuh): one dl per 256 values
// (k % 256 == 0), so a super-block's integer sums need no scale between its sub-blocks. Layout
// per token: int8 hi[k] | int8 lo[k] | f32 dl[k / 256][4] (16-byte slots, [0] used), the
// representation error at most dl / 2 = amax / 64516 of the 256 values. The warp quantizes
// columns c0 .. c0 + 255 (c0 % 256 == 0) of one token into `tok`.
__device__ __forceinline__ void quant_chunk_sb(const float* row, int64_t c0, int64_t k,
                                               uint8_t* tok, int lane, const NormArgs& nrm) {
  const int64_t col = c0 + 8 * lane;
  float v[8];
  load_lane(row, col, k, nrm, v);
  float amax = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(v[j]));
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  int hi[8], lo[8];
  const float dl = split_planes(v, amax, hi, lo);
  *reinterpret_cast<uint2*>(tok + col) = make_uint2(pack4(hi), pack4(hi + 4));
  *reinterpret_cast<uint2*>(tok + k + col) = make_uint2(pack4(lo), pack4(lo + 4));
  if (lane == 0) reinterpret_cast<float*>(tok + 2 * k)[(c0 / 256) * 4] = dl;
}

}  // namespace lw::cuda::q8x2
