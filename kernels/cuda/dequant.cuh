// Internal to kernels/cuda: per-unit loads and dequantization of weights in the device
// layout (weight_layout.h). A unit is 32 values of one row (8 quads of 4 consecutive
// columns). dequant_h2() yields 16 packed half2 in "quad order": out[2q] = (col c, c+2) and
// out[2q+1] = (col c+1, c+3) where c = unit_quad_col(type, unit, q); the mma kernels pair
// them with activations staged in the same order; K-quant values are computed in f32 and
// rounded to f16 once. dequant_f32() yields the 32 values in
// f32 computed exactly like the CPU reference dequantizer (same operations, same rounding).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/weight_layout.h"

namespace lw::cuda::dq {

struct WeightView {
  const uint8_t* w;  // device layout base
  int64_t rows;
  int64_t k;
  int64_t row_bytes;  // row_size(type, k)
};

__device__ __forceinline__ uint4 ldg16(const void* p) {
  return __ldg(static_cast<const uint4*>(p));
}
__device__ __forceinline__ uint2 ldg8(const void* p) { return __ldg(static_cast<const uint2*>(p)); }
__device__ __forceinline__ uint32_t bits(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }
__device__ __forceinline__ __half2 h2(uint32_t u) { return *reinterpret_cast<__half2*>(&u); }
__device__ __forceinline__ float f16_bits_to_f32(uint32_t b) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(b & 0xFFFFu)));
}
__device__ __forceinline__ uint32_t byte_of(uint32_t w, int i) { return (w >> (8 * i)) & 0xFFu; }
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}
// 1024 + v for the two 16-bit lanes' low bits already masked in: (v | 0x6400 per lane).
constexpr uint32_t kMagic = 0x64006400u;
// Exact float of an integer 0 <= q < 2^23 (mantissa trick: one LOP3 and one FADD).
__device__ __forceinline__ float u2f(uint32_t q) {
  return __uint_as_float(0x4B000000u | q) - 8388608.0f;
}
// Two f32 values rounded to f16 (round to nearest even) and packed: lo in the low half.
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  return bits(__floats2half2_rn(lo, hi));
}

// ---- scale decoding shared by Q4_K / Q5_K: header words y,z,w hold scales[0..11] ----
__device__ __forceinline__ void scale_min_k4(const uint4& hdr, int j, uint32_t* sc, uint32_t* m) {
  const int jj = j & 3;
  if (j < 4) {
    *sc = byte_of(hdr.y, jj) & 63u;
    *m = byte_of(hdr.z, jj) & 63u;
  } else {
    const uint32_t hi = byte_of(hdr.w, jj);
    *sc = (hi & 0xFu) | ((byte_of(hdr.y, jj) >> 6) << 4);
    *m = (hi >> 4) | ((byte_of(hdr.z, jj) >> 6) << 4);
  }
}

// ------------------------------------------------------------------------------------------
template <GgmlType T>
struct Unit;

template <>
struct Unit<GgmlType::Q4_K> {
  static constexpr int kDepth = 2;  // gemv prefetch depth (register ring slots)
  struct Raw {
    uint4 qs, hdr;
  };
  __device__ __forceinline__ static Raw load(const WeightView& v, int64_t r, int64_t unit) {
    const uint8_t* blk = v.w + r * v.row_bytes + (unit >> 3) * 144;
    return {ldg16(blk + 16 + 16 * (unit & 7)), ldg16(blk)};
  }
  // Weights are computed in f32 (d*sc*q - dmin*m, as the reference) and rounded to f16 once.
  __device__ __forceinline__ static void dequant_h2(const Raw& raw, int64_t unit, uint32_t* out) {
    const int c = static_cast<int>(unit & 7) >> 1;
    const float d = f16_bits_to_f32(raw.hdr.x);
    const float dmin = f16_bits_to_f32(raw.hdr.x >> 16);
    uint32_t sc0, m0, sc1, m1;
    scale_min_k4(raw.hdr, 2 * c, &sc0, &m0);
    scale_min_k4(raw.hdr, 2 * c + 1, &sc1, &m1);
    const float d1 = d * static_cast<float>(sc0), n1 = -(dmin * static_cast<float>(m0));
    const float d2 = d * static_cast<float>(sc1), n2 = -(dmin * static_cast<float>(m1));
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t a = word_of(raw.qs, q);
      // byte e of a: column c0 + e (low nibble) and c0 + 32 + e (high nibble).
      out[2 * q] = pack2(fmaf(d1, u2f(a & 0xFu), n1), fmaf(d1, u2f((a >> 16) & 0xFu), n1));
      out[2 * q + 1] =
          pack2(fmaf(d1, u2f((a >> 8) & 0xFu), n1), fmaf(d1, u2f((a >> 24) & 0xFu), n1));
      out[8 + 2 * q] =
          pack2(fmaf(d2, u2f((a >> 4) & 0xFu), n2), fmaf(d2, u2f((a >> 20) & 0xFu), n2));
      out[8 + 2 * q + 1] = pack2(fmaf(d2, u2f((a >> 12) & 0xFu), n2), fmaf(d2, u2f(a >> 28), n2));
    }
  }
  __device__ __forceinline__ static void dequant_f32(const Raw& raw, int64_t unit, float* out) {
    const int c = static_cast<int>(unit & 7) >> 1;
    const float d = f16_bits_to_f32(raw.hdr.x);
    const float dmin = f16_bits_to_f32(raw.hdr.x >> 16);
    uint32_t sc0, m0, sc1, m1;
    scale_min_k4(raw.hdr, 2 * c, &sc0, &m0);
    scale_min_k4(raw.hdr, 2 * c + 1, &sc1, &m1);
    const float d1 = __fmul_rn(d, static_cast<float>(sc0));
    const float mm1 = __fmul_rn(dmin, static_cast<float>(m0));
    const float d2 = __fmul_rn(d, static_cast<float>(sc1));
    const float mm2 = __fmul_rn(dmin, static_cast<float>(m1));
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t a = word_of(raw.qs, q);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const uint32_t byte = byte_of(a, e);
        out[4 * q + e] = __fsub_rn(__fmul_rn(d1, static_cast<float>(byte & 0xFu)), mm1);
        out[16 + 4 * q + e] = __fsub_rn(__fmul_rn(d2, static_cast<float>(byte >> 4)), mm2);
      }
    }
  }
};

template <>
struct Unit<GgmlType::Q5_K> {
  static constexpr int kDepth = 2;  // gemv prefetch depth (register ring slots)
  struct Raw {
    uint4 qs, qh, hdr;
  };
  __device__ __forceinline__ static Raw load(const WeightView& v, int64_t r, int64_t unit) {
    const uint8_t* blk = v.w + r * v.row_bytes + (unit >> 3) * 176;
    const int u = static_cast<int>(unit & 7);
    return {ldg16(blk + 48 + 16 * u), ldg16(blk + 16 + 16 * (u & 1)), ldg16(blk)};
  }
  // As Q4_K: f32 math, one rounding to f16.
  __device__ __forceinline__ static void dequant_h2(const Raw& raw, int64_t unit, uint32_t* out) {
    const int c = static_cast<int>(unit & 7) >> 1;
    const float d = f16_bits_to_f32(raw.hdr.x);
    const float dmin = f16_bits_to_f32(raw.hdr.x >> 16);
    uint32_t sc0, m0, sc1, m1;
    scale_min_k4(raw.hdr, 2 * c, &sc0, &m0);
    scale_min_k4(raw.hdr, 2 * c + 1, &sc1, &m1);
    const float d1 = d * static_cast<float>(sc0), n1 = -(dmin * static_cast<float>(m0));
    const float d2 = d * static_cast<float>(sc1), n2 = -(dmin * static_cast<float>(m1));
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t a = word_of(raw.qs, q);
      const uint32_t hl = word_of(raw.qh, q) >> (2 * c);  // bit 8e: high bit of low value e
      float lo[4], hi[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const uint32_t byte = (a >> (8 * e)) & 0xFFu;
        const uint32_t hb = (hl >> (8 * e)) & 3u;
        lo[e] = fmaf(d1, u2f((byte & 0xFu) | ((hb & 1u) << 4)), n1);
        hi[e] = fmaf(d2, u2f((byte >> 4) | ((hb >> 1) << 4)), n2);
      }
      out[2 * q] = pack2(lo[0], lo[2]);
      out[2 * q + 1] = pack2(lo[1], lo[3]);
      out[8 + 2 * q] = pack2(hi[0], hi[2]);
      out[8 + 2 * q + 1] = pack2(hi[1], hi[3]);
    }
  }
  __device__ __forceinline__ static void dequant_f32(const Raw& raw, int64_t unit, float* out) {
    const int c = static_cast<int>(unit & 7) >> 1;
    const float d = f16_bits_to_f32(raw.hdr.x);
    const float dmin = f16_bits_to_f32(raw.hdr.x >> 16);
    uint32_t sc0, m0, sc1, m1;
    scale_min_k4(raw.hdr, 2 * c, &sc0, &m0);
    scale_min_k4(raw.hdr, 2 * c + 1, &sc1, &m1);
    const float d1 = __fmul_rn(d, static_cast<float>(sc0));
    const float mm1 = __fmul_rn(dmin, static_cast<float>(m0));
    const float d2 = __fmul_rn(d, static_cast<float>(sc1));
    const float mm2 = __fmul_rn(dmin, static_cast<float>(m1));
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t a = word_of(raw.qs, q);
      const uint32_t h = word_of(raw.qh, q);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const uint32_t byte = byte_of(a, e), hb = byte_of(h, e);
        const uint32_t ql = (byte & 0xFu) + (((hb >> (2 * c)) & 1u) ? 16u : 0u);
        const uint32_t qh = (byte >> 4) + (((hb >> (2 * c + 1)) & 1u) ? 16u : 0u);
        out[4 * q + e] = __fsub_rn(__fmul_rn(d1, static_cast<float>(ql)), mm1);
        out[16 + 4 * q + e] = __fsub_rn(__fmul_rn(d2, static_cast<float>(qh)), mm2);
      }
    }
  }
};

template <>
struct Unit<GgmlType::Q6_K> {
  static constexpr int kDepth = 2;  // gemv prefetch depth (register ring slots)
  struct Raw {
    uint2 ql_a, ql_b, qh, sc;
    uint32_t d;
  };
  __device__ __forceinline__ static Raw load(const WeightView& v, int64_t r, int64_t unit) {
    const Q6kOffsets off = q6k_offsets(v.rows, v.k);
    const int64_t b = r * (v.k / 256) + (unit >> 3);
    const int u = static_cast<int>(unit & 7);
    const int n = u >> 2, L = u & 3;
    const uint8_t* ql = v.w + off.ql + b * 128 + 64 * n + 8 * L;
    Raw raw;
    raw.ql_a = ldg8(ql);
    raw.ql_b = ldg8(ql + 32);
    raw.qh = ldg8(v.w + off.qh + b * 64 + 32 * n + 8 * L);
    raw.sc = ldg8(v.w + off.scales + b * 16 + 8 * n);
    raw.d = __ldg(reinterpret_cast<const unsigned short*>(v.w + off.d + b * 2));
    return raw;
  }
  // Scale of quad pair p (0..3) of a unit with l-group L: scales[8n + L/2 + 2p].
  __device__ __forceinline__ static float scale(const Raw& raw, int L, int p) {
    const int i = (L >> 1) + 2 * p;
    const uint32_t w = i < 4 ? raw.sc.x : raw.sc.y;
    return static_cast<float>(static_cast<int8_t>(byte_of(w, i & 3)));
  }
  // f32 math ((d * scale) * (q - 32), as the reference), one rounding to f16.
  __device__ __forceinline__ static void dequant_h2(const Raw& raw, int64_t unit, uint32_t* out) {
    const int L = static_cast<int>(unit & 3);
    const float d = f16_bits_to_f32(raw.d);
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const float ds = d * scale(raw, L, p);
      const uint2 src = (p & 1) ? raw.ql_b : raw.ql_a;
#pragma unroll
      for (int w = 0; w < 2; ++w) {
        const uint32_t nib = (w == 0 ? src.x : src.y) >> (p >= 2 ? 4 : 0);
        const uint32_t hq = (w == 0 ? raw.qh.x : raw.qh.y) >> (2 * p);
        float v[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const uint32_t q = ((nib >> (8 * e)) & 0xFu) | (((hq >> (8 * e)) & 3u) << 4);
          v[e] = ds * (u2f(q) - 32.0f);
        }
        out[2 * (2 * p + w)] = pack2(v[0], v[2]);
        out[2 * (2 * p + w) + 1] = pack2(v[1], v[3]);
      }
    }
  }
  __device__ __forceinline__ static void dequant_f32(const Raw& raw, int64_t unit, float* out) {
    const int L = static_cast<int>(unit & 3);
    const float d = f16_bits_to_f32(raw.d);
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      const float ds = __fmul_rn(d, scale(raw, L, p));
      const uint2 src = (p & 1) ? raw.ql_b : raw.ql_a;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint32_t lb = byte_of(i < 4 ? src.x : src.y, i & 3);
        const uint32_t hb = byte_of(i < 4 ? raw.qh.x : raw.qh.y, i & 3);
        const uint32_t nib = p >= 2 ? (lb >> 4) : (lb & 0xFu);
        const int q = static_cast<int>(nib | (((hb >> (2 * p)) & 3u) << 4)) - 32;
        out[8 * p + i] = __fmul_rn(ds, static_cast<float>(q));
      }
    }
  }
};

template <>
struct Unit<GgmlType::Q8_0> {
  static constexpr int kDepth = 2;  // gemv prefetch depth (register ring slots)
  struct Raw {
    uint4 q0, q1;
    uint32_t d;
  };
  __device__ __forceinline__ static Raw load(const WeightView& v, int64_t r, int64_t unit) {
    const uint8_t* qs = v.w + r * v.k + 32 * unit;
    Raw raw;
    raw.q0 = ldg16(qs);
    raw.q1 = ldg16(qs + 16);
    raw.d = __ldg(
        reinterpret_cast<const unsigned short*>(v.w + v.rows * v.k + (r * (v.k / 32) + unit) * 2));
    return raw;
  }
  __device__ __forceinline__ static void dequant_h2(const Raw& raw, int64_t, uint32_t* out) {
    const __half2 d = __half2half2(__ushort_as_half(static_cast<unsigned short>(raw.d)));
    const __half2 k1152 = __float2half2_rn(1152.0f);
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const uint32_t w = word_of(q < 4 ? raw.q0 : raw.q1, q & 3) ^ 0x80808080u;
      out[2 * q] = bits(__hmul2(__hsub2(h2(__byte_perm(w, 0x64646464u, 0x4240)), k1152), d));
      out[2 * q + 1] = bits(__hmul2(__hsub2(h2(__byte_perm(w, 0x64646464u, 0x4341)), k1152), d));
    }
  }
  __device__ __forceinline__ static void dequant_f32(const Raw& raw, int64_t, float* out) {
    const float d = f16_bits_to_f32(raw.d);
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const uint32_t w = word_of(q < 4 ? raw.q0 : raw.q1, q & 3);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        out[4 * q + e] = __fmul_rn(d, static_cast<float>(static_cast<int8_t>(byte_of(w, e))));
      }
    }
  }
};

template <>
struct Unit<GgmlType::F16> {
  static constexpr int kDepth = 2;  // gemv prefetch depth (register ring slots)
  struct Raw {
    uint4 v[4];
  };
  __device__ __forceinline__ static Raw load(const WeightView& v, int64_t r, int64_t unit) {
    const uint8_t* p = v.w + r * v.row_bytes + 64 * unit;
    return {{ldg16(p), ldg16(p + 16), ldg16(p + 32), ldg16(p + 48)}};
  }
  __device__ __forceinline__ static void dequant_h2(const Raw& raw, int64_t, uint32_t* out) {
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const uint32_t w0 = word_of(raw.v[q >> 1], 2 * (q & 1));
      const uint32_t w1 = word_of(raw.v[q >> 1], 2 * (q & 1) + 1);
      out[2 * q] = __byte_perm(w0, w1, 0x5410);
      out[2 * q + 1] = __byte_perm(w0, w1, 0x7632);
    }
  }
  __device__ __forceinline__ static void dequant_f32(const Raw& raw, int64_t, float* out) {
#pragma unroll
    for (int q = 0; q < 8; ++q) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const uint32_t w = word_of(raw.v[q >> 1], 2 * (q & 1) + (e >> 1));
        out[4 * q + e] = f16_bits_to_f32(w >> (16 * (e & 1)));
      }
    }
  }
};

template <>
struct Unit<GgmlType::BF16> {
  static constexpr int kDepth = 2;
  using Raw = Unit<GgmlType::F16>::Raw;
  __device__ __forceinline__ static Raw load(const WeightView& v, int64_t r, int64_t unit) {
    return Unit<GgmlType::F16>::load(v, r, unit);
  }
  __device__ __forceinline__ static float lo(uint32_t w) { return __uint_as_float(w << 16); }
  __device__ __forceinline__ static float hi(uint32_t w) {
    return __uint_as_float(w & 0xFFFF0000u);
  }
  __device__ __forceinline__ static void dequant_h2(const Raw& raw, int64_t, uint32_t* out) {
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const uint32_t w0 = word_of(raw.v[q >> 1], 2 * (q & 1));
      const uint32_t w1 = word_of(raw.v[q >> 1], 2 * (q & 1) + 1);
      out[2 * q] = bits(__floats2half2_rn(lo(w0), lo(w1)));
      out[2 * q + 1] = bits(__floats2half2_rn(hi(w0), hi(w1)));
    }
  }
  __device__ __forceinline__ static void dequant_f32(const Raw& raw, int64_t, float* out) {
#pragma unroll
    for (int q = 0; q < 8; ++q) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const uint32_t w = word_of(raw.v[q >> 1], 2 * (q & 1) + (e >> 1));
        out[4 * q + e] = (e & 1) ? hi(w) : lo(w);
      }
    }
  }
};

template <>
struct Unit<GgmlType::F32> {
  static constexpr int kDepth = 1;
  struct Raw {
    float4 v[8];
  };
  __device__ __forceinline__ static Raw load(const WeightView& v, int64_t r, int64_t unit) {
    const float4* p = reinterpret_cast<const float4*>(v.w + r * v.row_bytes + 128 * unit);
    Raw raw;
#pragma unroll
    for (int i = 0; i < 8; ++i) raw.v[i] = __ldg(p + i);
    return raw;
  }
  __device__ __forceinline__ static void dequant_h2(const Raw& raw, int64_t, uint32_t* out) {
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      out[2 * q] = bits(__floats2half2_rn(raw.v[q].x, raw.v[q].z));
      out[2 * q + 1] = bits(__floats2half2_rn(raw.v[q].y, raw.v[q].w));
    }
  }
  __device__ __forceinline__ static void dequant_f32(const Raw& raw, int64_t, float* out) {
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      out[4 * q + 0] = raw.v[q].x;
      out[4 * q + 1] = raw.v[q].y;
      out[4 * q + 2] = raw.v[q].z;
      out[4 * q + 3] = raw.v[q].w;
    }
  }
};

// Calls fn.template operator()<T>() for a runtime type (the seven device types).
template <typename Fn>
__host__ void dispatch_type(GgmlType type, Fn&& fn) {
  switch (type) {
    case GgmlType::Q4_K:
      fn.template operator()<GgmlType::Q4_K>();
      break;
    case GgmlType::Q5_K:
      fn.template operator()<GgmlType::Q5_K>();
      break;
    case GgmlType::Q6_K:
      fn.template operator()<GgmlType::Q6_K>();
      break;
    case GgmlType::Q8_0:
      fn.template operator()<GgmlType::Q8_0>();
      break;
    case GgmlType::F16:
      fn.template operator()<GgmlType::F16>();
      break;
    case GgmlType::BF16:
      fn.template operator()<GgmlType::BF16>();
      break;
    case GgmlType::F32:
      fn.template operator()<GgmlType::F32>();
      break;
    default:
      break;
  }
}

}  // namespace lw::cuda::dq
