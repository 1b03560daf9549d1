// Internal to kernels/cuda (gemv_q8_mma.cuh): the tensor-core int8 GEMV's per-type device
// code. The shared-memory layout of one super-block's activations, the mma.sync wrappers, a
// tile's exact integer sums, and per weight type (Q4_K, Q6_K) how a lane loads its two rows'
// super-block and turns it into A fragments, scales and offsets (A<T>::load / compute).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/gemv_q8_dot.cuh"

namespace lw::cuda::q8m {

using q8dot::h2f;

// One token's activations for one super-block in shared memory (the super-block format of
// act_q8x2.cuh): hi[256] at 0, lo[256] at kPlane, dl at kDl. The strides keep a half-warp's
// 8-byte B loads (tokens 2i, 2i + 1, both planes) on distinct banks.
constexpr int kPlane = 288, kDl = 576, kTokBytes = 704;
// 4-token tiles per block at most: their integer sums fit the registers of 4 blocks per SM
// (8 tiles spilled; more tokens run as token groups of adjacent blocks).
constexpr int kMaxTiles = 4;

__device__ __forceinline__ uint2 ldw8(const uint8_t* p) {
  uint2 r;
  asm("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
  return r;
}
__device__ __forceinline__ uint32_t ldw4(const uint8_t* p) {
  uint32_t r;
  asm("ld.global.nc.u32 %0, [%1];" : "=r"(r) : "l"(p));
  return r;
}

// c = A (16 x 32 u8) * B (32 x 8 s8), from zero. Not volatile: a pure function of its
// operands, so the compiler may schedule the B loads and the sums around it.
__device__ __forceinline__ void mma_k32(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                        uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%10,%10,%10};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0));
}
// c += A (16 x 32 u8, rows g: a0 in every column, g + 8: a1) * B (32 x 8 s8).
__device__ __forceinline__ void mma_k32_acc(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0,
                                            uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%4,%5}, "
      "{%6,%7}, {%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(b0), "r"(b1));
}
// c = A (16 x 16 u8) * B (16 x 8 s8), from zero.
__device__ __forceinline__ void mma_k16(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm("mma.sync.aligned.m16n8k16.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%7,%7,%7,%7};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(b0), "r"(0));
}
// c += A (16 x 16 s8) * B (16 x 8 s8).
__device__ __forceinline__ void mma_k16_s8_acc(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(b0));
}

// The integer sums of one tile over one super-block: main (scale-weighted group products)
// and off (the K-quant mins or Q6_K's scale-weighted activation sums), each as an mma's
// accumulators: row g hi plane, lo plane, row g + 8 hi, lo (of the lane's token).
struct TileSums {
  int main[4];
  int off[4];
};
__device__ __forceinline__ void zero(TileSums& s) {
#pragma unroll
  for (int i = 0; i < 4; ++i) s.main[i] = s.off[i] = 0;
}
// main += scale * c (the group's products; scale s0 for row g, s1 for row g + 8).
__device__ __forceinline__ void add_scaled(TileSums& s, const int (&c)[4], int s0, int s1) {
  s.main[0] += s0 * c[0];
  s.main[1] += s0 * c[1];
  s.main[2] += s1 * c[2];
  s.main[3] += s1 * c[3];
}
// acc_r += dm_r * (254 main_hi + main_lo) + doff_r * (254 off_hi + off_lo), in f32 (the
// integers are exact; each converts with one rounding).
__device__ __forceinline__ void fold(float (&acc)[2], const TileSums& s, float dm0, float dm1,
                                     float do0, float do1) {
  const float v0 = fmaf(254.f, static_cast<float>(s.main[0]), static_cast<float>(s.main[1]));
  const float v1 = fmaf(254.f, static_cast<float>(s.main[2]), static_cast<float>(s.main[3]));
  const float w0 = fmaf(254.f, static_cast<float>(s.off[0]), static_cast<float>(s.off[1]));
  const float w1 = fmaf(254.f, static_cast<float>(s.off[2]), static_cast<float>(s.off[3]));
  acc[0] = fmaf(dm0, v0, fmaf(do0, w0, acc[0]));
  acc[1] = fmaf(dm1, v1, fmaf(do1, w1, acc[1]));
}

// Where this lane reads the staged activations: B operand (column g of each tile: token
// 4 * tile + g / 2, plane g % 2) and the epilogue (token 4 * tile + t, its scales and sums),
// as byte offsets in a stage for tile 0; tile i adds i * kTileBytes. A stage holds 4 * NT
// tokens: those past n_tok are never copied and their sums never stored (each token's
// column of the products reads only its own activations).
struct XOff {
  int b, e;
};
__device__ __forceinline__ XOff x_offsets(int lane) {
  const int g = lane >> 2, t = lane & 3;
  return {(g >> 1) * kTokBytes + (g & 1) * kPlane, t * kTokBytes};
}
constexpr int kTileBytes = 4 * kTokBytes;

template <GgmlType T>
struct A;

// Q4_K: lane (g, t) reads bytes 32c + 8t .. + 7 of chunk c's quants in rows g and g + 8: low
// nibbles are values 8t .. 8t + 7 of sub-block 2c, high nibbles of sub-block 2c + 1 (A columns
// 4t.. take the first four, 16 + 4t.. the last four; B reads the same values).
template <>
struct A<GgmlType::Q4_K> {
  static constexpr int kBlockBytes = 144;
  struct Row {
    const uint8_t* p;  // the row's first block
  };
  __device__ __forceinline__ static Row row(const uint8_t* w, int64_t rows, int64_t r, int64_t k) {
    (void)rows;
    return {w + r * (k / 256) * kBlockBytes};
  }
  struct Raw {
    uint2 q[2][4];
    uint4 h[2];
  };
  __device__ __forceinline__ static void load(const Row (&rp)[2], int64_t sb, int t, Raw& r) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint8_t* b = rp[i].p + sb * kBlockBytes;
      r.h[i] = q8dot::ldw16(b);
#pragma unroll
      for (int c = 0; c < 4; ++c) r.q[i][c] = ldw8(b + 16 + 32 * c + 8 * t);
    }
  }
  // Per super-block and tile: main = sum_j sc_j (q . x)_j and off = sum_j m_j (sum x)_j (the
  // mins as an mma whose A holds m_j in every column), exact integers; then
  // y += d dl main - dmin dl off.
  template <int NT>
  __device__ __forceinline__ static void compute(const Raw& r, const uint8_t* xs, const XOff& xo,
                                                 int t, float (&acc)[NT][2]) {
    float d[2], dmin[2];
    uint32_t sc[2][2], mn[2][2];  // 6-bit scales / mins of sub-blocks 0..3 and 4..7, bytewise
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      d[i] = h2f(r.h[i].x);
      dmin[i] = -h2f(r.h[i].x >> 16);
      const uint32_t s0 = r.h[i].y, s1 = r.h[i].z, s2 = r.h[i].w;
      sc[i][0] = s0 & 0x3F3F3F3Fu;
      mn[i][0] = s1 & 0x3F3F3F3Fu;
      sc[i][1] = (s2 & 0x0F0F0F0Fu) | ((s0 >> 2) & 0x30303030u);
      mn[i][1] = ((s2 >> 4) & 0x0F0F0F0Fu) | ((s1 >> 2) & 0x30303030u);
    }
    static_assert(NT <= kMaxTiles, "tiles per block");
    TileSums ts[NT];
#pragma unroll
    for (int n = 0; n < NT; ++n) zero(ts[n]);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int c = j >> 1, sh = 4 * (j & 1), byte = 8 * (j & 3);
      const uint32_t a0 = (r.q[0][c].x >> sh) & 0x0F0F0F0Fu;
      const uint32_t a1 = (r.q[1][c].x >> sh) & 0x0F0F0F0Fu;
      const uint32_t a2 = (r.q[0][c].y >> sh) & 0x0F0F0F0Fu;
      const uint32_t a3 = (r.q[1][c].y >> sh) & 0x0F0F0F0Fu;
      const int s0 = (sc[0][j >> 2] >> byte) & 0xFF, s1 = (sc[1][j >> 2] >> byte) & 0xFF;
      const uint32_t m0 = ((mn[0][j >> 2] >> byte) & 0xFFu) * 0x01010101u;
      const uint32_t m1 = ((mn[1][j >> 2] >> byte) & 0xFFu) * 0x01010101u;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        const uint2 b =
            *reinterpret_cast<const uint2*>(xs + xo.b + n * kTileBytes + 32 * j + 8 * t);
        int cc[4];
        mma_k32(cc, a0, a1, a2, a3, b.x, b.y);
        add_scaled(ts[n], cc, s0, s1);
        mma_k32_acc(ts[n].off, m0, m1, b.x, b.y);
      }
    }
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const float dl = *reinterpret_cast<const float*>(xs + xo.e + n * kTileBytes + kDl);
      fold(acc[n], ts[n], d[0] * dl, d[1] * dl, dmin[0] * dl, dmin[1] * dl);
    }
  }
};

// Q6_K (device layout ql | qh | scales | d): group (n, p, h) is the 16 values 128n + 32p + 16h
// + 0..15 (scale 8n + 2p + h); lane (g, t) takes values 4t .. 4t + 3 of each group in rows g
// and g + 8: ql word 64n + 32(p % 2) + 16h + 4t (low nibbles p < 2, high p >= 2) and qh word
// 32n + 16h + 4t (bits 2p, 2p + 1).
template <>
struct A<GgmlType::Q6_K> {
  struct Row {
    const uint8_t* w;  // tensor base
    uint32_t b0;       // the row's first super-block
    uint32_t nb_all;   // super-blocks in the tensor
  };
  __device__ __forceinline__ static Row row(const uint8_t* w, int64_t rows, int64_t r, int64_t k) {
    return {w, static_cast<uint32_t>(r * (k / 256)), static_cast<uint32_t>(rows * (k / 256))};
  }
  struct Raw {
    uint32_t ql[2][2][2][2];  // [row][n][p % 2][h]
    uint32_t qh[2][2][2];     // [row][n][h]
    uint4 sc[2];
    uint32_t d[2];
  };
  __device__ __forceinline__ static void load(const Row (&rp)[2], int64_t sb, int t, Raw& r) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint64_t b = rp[i].b0 + static_cast<uint64_t>(sb), nb = rp[i].nb_all;
      const uint8_t* ql = rp[i].w + b * 128;
      const uint8_t* qh = rp[i].w + nb * 128 + b * 64;
#pragma unroll
      for (int n = 0; n < 2; ++n) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          r.ql[i][n][0][h] = ldw4(ql + 64 * n + 16 * h + 4 * t);
          r.ql[i][n][1][h] = ldw4(ql + 64 * n + 32 + 16 * h + 4 * t);
          r.qh[i][n][h] = ldw4(qh + 32 * n + 16 * h + 4 * t);
        }
      }
      r.sc[i] = q8dot::ldw16(rp[i].w + nb * 192 + b * 16);
      r.d[i] = q8dot::ldw2(rp[i].w + nb * 208 + b * 2);
    }
  }
  // Per super-block and tile: main = sum_g sc_g (q . x)_g and off = sum_g sc_g (sum x)_g (an
  // mma whose A holds the signed scale in every column), exact integers; then
  // y += d dl (main - 32 off).
  template <int NT>
  __device__ __forceinline__ static void compute(const Raw& r, const uint8_t* xs, const XOff& xo,
                                                 int t, float (&acc)[NT][2]) {
    const float d0 = h2f(r.d[0]), d1 = h2f(r.d[1]);
    static_assert(NT <= kMaxTiles, "tiles per block");
    TileSums ts[NT];
#pragma unroll
    for (int m = 0; m < NT; ++m) zero(ts[m]);
#pragma unroll
    for (int n = 0; n < 2; ++n) {
#pragma unroll
      for (int p = 0; p < 4; ++p) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int is = 8 * n + 2 * p + h, sh = 4 * (p >> 1);
          const uint32_t a0 = ((r.ql[0][n][p & 1][h] >> sh) & 0x0F0F0F0Fu) |
                              (((r.qh[0][n][h] >> (2 * p)) & 0x03030303u) << 4);
          const uint32_t a1 = ((r.ql[1][n][p & 1][h] >> sh) & 0x0F0F0F0Fu) |
                              (((r.qh[1][n][h] >> (2 * p)) & 0x03030303u) << 4);
          const uint32_t w0 = (dq::word_of(r.sc[0], is >> 2) >> (8 * (is & 3))) & 0xFFu;
          const uint32_t w1 = (dq::word_of(r.sc[1], is >> 2) >> (8 * (is & 3))) & 0xFFu;
          const int s0 = static_cast<int8_t>(w0), s1 = static_cast<int8_t>(w1);
          const int col = 128 * n + 32 * p + 16 * h;
#pragma unroll
          for (int m = 0; m < NT; ++m) {
            const uint32_t b =
                *reinterpret_cast<const uint32_t*>(xs + xo.b + m * kTileBytes + col + 4 * t);
            int cc[4];
            mma_k16(cc, a0, a1, b);
            add_scaled(ts[m], cc, s0, s1);
            mma_k16_s8_acc(ts[m].off, w0 * 0x01010101u, w1 * 0x01010101u, b);
          }
        }
      }
    }
#pragma unroll
    for (int m = 0; m < NT; ++m) {
      const float dl = *reinterpret_cast<const float*>(xs + xo.e + m * kTileBytes + kDl);
      fold(acc[m], ts[m], d0 * dl, d1 * dl, -32.f * d0 * dl, -32.f * d1 * dl);
    }
  }
};

}  // namespace lw::cuda::q8m
