// Internal to kernels/cuda (gemv_q8.cu): per weight type, where one lane's "slot" of a row
// lies in the device layout (weight_layout.h), how it is loaded (16-byte loads that bypass
// L1), unpacked and dotted with q8x2 activations (act_q8x2.cuh) through dp4a. Iteration `it`
// of a row covers slots it * 32 + lane: 32 values per slot for the K-quants (16 bytes of
// 4-bit quants, unit lane % 8 of super-block it * 4 + lane / 8) and 16 for Q8_0. Everything
// that depends only on the lane is computed once (Lane); a slot's weights are unpacked once
// (Unp) and dotted with each token's activations for that slot (X). Integer sums are exact;
// scales apply in f32.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/act_q8x2.cuh"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/weight_layout.h"

namespace lw::cuda::q8dot {

using q8x2::Tok;

__device__ __forceinline__ uint4 ldw16(const uint8_t* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}
__device__ __forceinline__ uint32_t ldw2(const uint8_t* p) {
  unsigned short v;
  asm("ld.global.nc.L1::no_allocate.u16 %0, [%1];" : "=h"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ float h2f(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xFFFFu)));
}

// One 16-value run of one token: the two planes and the run's scale and sum.
struct XRun {
  int4 h, l;
  float dl, sum;
};
__device__ __forceinline__ XRun load_run(const Tok& x, int col, int64_t k) {
  return {x.hi16(col), x.lo16(col, k), x.dl(col, k), x.xsum(col, k)};
}
// sum over the 16 values of w (4 words of 4 int8) times the run's values.
__device__ __forceinline__ float dot16(const uint32_t (&w)[4], const XRun& x) {
  int sh = __dp4a(static_cast<int>(w[0]), x.h.x, 0);
  int sl = __dp4a(static_cast<int>(w[0]), x.l.x, 0);
  sh = __dp4a(static_cast<int>(w[1]), x.h.y, sh);
  sl = __dp4a(static_cast<int>(w[1]), x.l.y, sl);
  sh = __dp4a(static_cast<int>(w[2]), x.h.z, sh);
  sl = __dp4a(static_cast<int>(w[2]), x.l.z, sl);
  sh = __dp4a(static_cast<int>(w[3]), x.h.w, sh);
  sl = __dp4a(static_cast<int>(w[3]), x.l.w, sl);
  return x.dl * static_cast<float>(254 * sh + sl);
}

template <GgmlType T>
struct W;

// Q4_K / Q5_K: unit u = lane % 8 is chunk c = u / 2, half h = u % 2: low nibbles are columns
// 64c + 16h + 0..15 (sub-block 2c), high nibbles 64c + 32 + 16h + 0..15 (2c + 1) of the
// super-block. y += d * sc * sum(q x) - dmin * m * sum(x) per 16 values.
template <bool kQ5>
struct WK {
  static constexpr int kBlockBytes = kQ5 ? 176 : 144;
  struct Lane {
    int qs_off, qh_off, hdr_off;  // byte offsets within the iteration's 4 super-blocks
    int col;                      // first column of the low run within the iteration
    int sh0, sh1;                 // bit offsets of sub-blocks 2c, 2c + 1 in a scale word
    bool upper;                   // c >= 2: sub-blocks 4..7 (split 6-bit scales)
    int qh_bit;                   // Q5_K: the high bit of the low run (2c)
  };
  __device__ __forceinline__ static Lane lane_of(int lane) {
    const int u = lane & 7, c = u >> 1, h = u & 1, b = (lane >> 3) * kBlockBytes;
    return {b + (kQ5 ? 48 : 16) + 16 * u,
            b + 16 + 16 * h,
            b,
            (lane >> 3) * 256 + 64 * c + 16 * h,
            8 * ((2 * c) & 3),
            8 * ((2 * c + 1) & 3),
            c >= 2,
            2 * c};
  }
  struct RawQ4 {
    uint4 qs, hdr;
  };
  struct RawQ5 {
    uint4 qs, qh, hdr;
  };
  using Raw = std::conditional_t<kQ5, RawQ5, RawQ4>;
  struct Row {
    const uint8_t* p;
  };
  __device__ __forceinline__ static Row row(const uint8_t* w, int64_t rows, int64_t r, int64_t k) {
    (void)rows;
    return {w + r * (k / 256) * kBlockBytes};
  }
  __device__ __forceinline__ static Raw load(const Row& rp, int it, const Lane& L) {
    const uint8_t* base = rp.p + static_cast<int64_t>(it) * (4 * kBlockBytes);
    Raw r;
    r.qs = ldw16(base + L.qs_off);
    if constexpr (kQ5) r.qh = ldw16(base + L.qh_off);
    r.hdr = ldw16(base + L.hdr_off);
    return r;
  }
  struct Unp {
    uint32_t lo[4], hi[4];
    float d0, d1, n0, n1;
  };
  __device__ __forceinline__ static Unp unpack(const Raw& raw, const Lane& L) {
    Unp u;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t w = dq::word_of(raw.qs, q);
      u.lo[q] = w & 0x0F0F0F0Fu;
      u.hi[q] = (w >> 4) & 0x0F0F0F0Fu;
      if constexpr (kQ5) {
        const uint32_t h = dq::word_of(raw.qh, q);
        u.lo[q] |= ((h >> L.qh_bit) & 0x01010101u) << 4;
        u.hi[q] |= ((h >> (L.qh_bit + 1)) & 0x01010101u) << 4;
      }
    }
    // 6-bit scales and mins (ggml's get_scale_min_k4) of sub-blocks 2c and 2c + 1.
    const uint32_t y0 = raw.hdr.y >> L.sh0, z0 = raw.hdr.z >> L.sh0, w0 = raw.hdr.w >> L.sh0;
    const uint32_t y1 = raw.hdr.y >> L.sh1, z1 = raw.hdr.z >> L.sh1, w1 = raw.hdr.w >> L.sh1;
    const uint32_t sc0 = L.upper ? ((w0 & 0xFu) | ((y0 >> 2) & 0x30u)) : (y0 & 63u);
    const uint32_t m0 = L.upper ? (((w0 >> 4) & 0xFu) | ((z0 >> 2) & 0x30u)) : (z0 & 63u);
    const uint32_t sc1 = L.upper ? ((w1 & 0xFu) | ((y1 >> 2) & 0x30u)) : (y1 & 63u);
    const uint32_t m1 = L.upper ? (((w1 >> 4) & 0xFu) | ((z1 >> 2) & 0x30u)) : (z1 & 63u);
    const float d = h2f(raw.hdr.x), dmin = h2f(raw.hdr.x >> 16);
    u.d0 = d * static_cast<float>(sc0);
    u.d1 = d * static_cast<float>(sc1);
    u.n0 = -dmin * static_cast<float>(m0);
    u.n1 = -dmin * static_cast<float>(m1);
    return u;
  }
  struct X {
    XRun a, b;
  };
  __device__ __forceinline__ static X load_x(const Tok& x, int it, const Lane& L, int64_t k) {
    const int col = it * 1024 + L.col;
    return {load_run(x, col, k), load_run(x, col + 32, k)};
  }
  __device__ __forceinline__ static float dot(const Unp& u, const X& x, float acc) {
    acc = fmaf(u.d0, dot16(u.lo, x.a), acc);
    acc = fmaf(u.n0, x.a.sum, acc);
    acc = fmaf(u.d1, dot16(u.hi, x.b), acc);
    return fmaf(u.n1, x.b.sum, acc);
  }
};
template <>
struct W<GgmlType::Q4_K> : WK<false> {};
template <>
struct W<GgmlType::Q5_K> : WK<true> {};

// Q6_K (device layout: ql | qh | scales | d arrays): unit u = lane % 8 is half n = u / 4,
// a = u % 4: ql bytes 64n + 16a .. +15 and qh bytes 32n + 16(a % 2) .. +15 give columns
// 128n + 16a + 0..15 (low nibbles, qh bits >> (a >= 2 ? 2 : 0), scale 8n + a) and +64 (high
// nibbles, qh bits >> 4 more, scale 8n + 4 + a); values q - 32: sum(q x) - 32 sum(x).
template <>
struct W<GgmlType::Q6_K> {
  struct Lane {
    int sb;  // super-block within the iteration (lane / 8)
    int ql_off, qh_off;
    int col;       // first column of the low run within the iteration
    int shift;     // qh bit offset of the low run
    int sc_shift;  // bit offset of scale bytes 8n + a / 8n + 4 + a in their words
    bool n1;       // second half: scale words z, w instead of x, y
  };
  __device__ __forceinline__ static Lane lane_of(int lane) {
    const int u = lane & 7, n = u >> 2, a = u & 3;
    return {lane >> 3,
            64 * n + 16 * a,
            32 * n + 16 * (a & 1),
            (lane >> 3) * 256 + 128 * n + 16 * a,
            a >= 2 ? 2 : 0,
            8 * a,
            n == 1};
  }
  struct Raw {
    uint4 ql, qh, sc;
    uint32_t d;
  };
  // The tensor's base, the row's first super-block and the tensor's super-block count (the
  // four arrays' offsets follow from it: q6k_offsets).
  struct Row {
    const uint8_t* w;
    uint32_t b0;
    uint32_t nb_all;
  };
  __device__ __forceinline__ static Row row(const uint8_t* w, int64_t rows, int64_t r, int64_t k) {
    return {w, static_cast<uint32_t>(r * (k / 256)), static_cast<uint32_t>(rows * (k / 256))};
  }
  __device__ __forceinline__ static Raw load(const Row& rp, int it, const Lane& L) {
    const uint64_t b = rp.b0 + static_cast<uint64_t>(it) * 4 + L.sb, nb = rp.nb_all;
    Raw r;
    r.ql = ldw16(rp.w + b * 128 + L.ql_off);
    r.qh = ldw16(rp.w + nb * 128 + b * 64 + L.qh_off);
    r.sc = ldw16(rp.w + nb * 192 + b * 16);
    r.d = ldw2(rp.w + nb * 208 + b * 2);
    return r;
  }
  struct Unp {
    uint32_t lo[4], hi[4];
    float d0, d1;
  };
  __device__ __forceinline__ static Unp unpack(const Raw& raw, const Lane& L) {
    Unp u;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const uint32_t l = dq::word_of(raw.ql, q), h = dq::word_of(raw.qh, q);
      u.lo[q] = (l & 0x0F0F0F0Fu) | (((h >> L.shift) & 0x03030303u) << 4);
      u.hi[q] = ((l >> 4) & 0x0F0F0F0Fu) | (((h >> (L.shift + 4)) & 0x03030303u) << 4);
    }
    const uint32_t wlo = L.n1 ? raw.sc.z : raw.sc.x, whi = L.n1 ? raw.sc.w : raw.sc.y;
    const float d = h2f(raw.d);
    u.d0 = d * static_cast<float>(static_cast<int8_t>(wlo >> L.sc_shift));
    u.d1 = d * static_cast<float>(static_cast<int8_t>(whi >> L.sc_shift));
    return u;
  }
  struct X {
    XRun a, b;
  };
  __device__ __forceinline__ static X load_x(const Tok& x, int it, const Lane& L, int64_t k) {
    const int col = it * 1024 + L.col;
    return {load_run(x, col, k), load_run(x, col + 64, k)};
  }
  __device__ __forceinline__ static float dot(const Unp& u, const X& x, float acc) {
    acc = fmaf(u.d0, fmaf(-32.f, x.a.sum, dot16(u.lo, x.a)), acc);
    return fmaf(u.d1, fmaf(-32.f, x.b.sum, dot16(u.hi, x.b)), acc);
  }
};

// Q8_0 (device layout: qs int8[rows][k] | d f16[rows][k/32]): slot = 16 values, iteration
// it covers columns it * 512 + 16 * lane.
template <>
struct W<GgmlType::Q8_0> {
  struct Lane {
    int col;
  };
  __device__ __forceinline__ static Lane lane_of(int lane) { return {16 * lane}; }
  struct Raw {
    uint4 q;
    uint32_t d;
  };
  struct Row {
    const uint8_t* qs;
    const uint8_t* d;
  };
  __device__ __forceinline__ static Row row(const uint8_t* w, int64_t rows, int64_t r, int64_t k) {
    return {w + r * k, w + rows * k + r * (k / 32) * 2};
  }
  __device__ __forceinline__ static Raw load(const Row& rp, int it, const Lane& L) {
    const int col = it * 512 + L.col;
    return {ldw16(rp.qs + col), ldw2(rp.d + (col >> 5) * 2)};
  }
  struct Unp {
    uint32_t w[4];
    float d;
  };
  __device__ __forceinline__ static Unp unpack(const Raw& raw, const Lane& L) {
    (void)L;
    return {{raw.q.x, raw.q.y, raw.q.z, raw.q.w}, h2f(raw.d)};
  }
  struct X {
    XRun a;
  };
  __device__ __forceinline__ static X load_x(const Tok& x, int it, const Lane& L, int64_t k) {
    return {load_run(x, it * 512 + L.col, k)};
  }
  __device__ __forceinline__ static float dot(const Unp& u, const X& x, float acc) {
    return fmaf(u.d, dot16(u.w, x.a), acc);
  }
};

}  // namespace lw::cuda::q8dot
