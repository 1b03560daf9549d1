// The small-batch GEMV kernel templated on its shape (gemv_small.h owns the contract):
// W warps per block, S row streams per warp, B units per lane loaded before any is used, KS
// warps sharing one row group, each over a stripe of K (partials summed in a fixed order in
// shared memory, so results are deterministic). Included by gemv_small.cu (dispatch) and the
// gemv_small_cfg*.cu files, which instantiate gemv_small_launch for the configurations.
#pragma once

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/gemv.h"

namespace lw::cuda::small_detail {

struct SMat {
  const uint8_t* w;
  int64_t rows;
  int64_t row_bytes;
  float* y;
  int64_t ldy;
  const float* add_in;
  float* add_out;
  int64_t ld_add;
};

struct SParams {
  SMat m[kGemvMaxGroup];
  int64_t row_begin[kGemvMaxGroup + 1];  // concatenated rows of the group
  int n_mat;
  int64_t k;
  int64_t units;
  const float* x;
  int64_t ldx;
  float* swiglu_out;  // non-null: a gate/up pair
  int64_t ld_swiglu;
  int64_t n_warps;  // row groups (set by gemv_small_launch)
};

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }
__device__ __forceinline__ float4 ldx4(const float* p) {
  return __ldg(reinterpret_cast<const float4*>(p));
}
__device__ __forceinline__ float comp(const float4& v, int e) {
  return e == 0 ? v.x : (e == 1 ? v.y : (e == 2 ? v.z : v.w));
}

// Generic: the reference dequantization to f32, then f32 dot products (Q8_0, F16).
template <GgmlType T, int NT, int S>
struct SmallDot {
  using U = dq::Unit<T>;
  using Raw = typename U::Raw;
  __device__ __forceinline__ static void unit(const Raw (&raw)[S], int64_t unit, const float* x,
                                              int64_t ldx, float (&acc)[S][NT]) {
#pragma unroll
    for (int s = 0; s < S; ++s) {
      float w[32];
      U::dequant_f32(raw[s], unit, w);
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        const int64_t col = unit_quad_col(T, unit, q);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          const float4 xv = ldx4(x + t * ldx + col);
          float a = acc[s][t];
          a = fmaf(w[4 * q], xv.x, a);
          a = fmaf(w[4 * q + 1], xv.y, a);
          a = fmaf(w[4 * q + 2], xv.z, a);
          a = fmaf(w[4 * q + 3], xv.w, a);
          acc[s][t] = a;
        }
      }
    }
  }
};

// Q4_K: per half sub-block (16 values), sum(q * x) and sum(x) in f32, then
// d*sc * sum(q x) - dmin*m * sum(x). The x loads and sums are shared by the streams.
template <int NT, int S>
struct SmallDot<GgmlType::Q4_K, NT, S> {
  using Raw = dq::Unit<GgmlType::Q4_K>::Raw;
  __device__ __forceinline__ static void unit(const Raw (&raw)[S], int64_t unit, const float* x,
                                              int64_t ldx, float (&acc)[S][NT]) {
    const int u = static_cast<int>(unit & 7), c = u >> 1, h = u & 1;
    const int64_t col_lo = (unit >> 3) * 256 + 64 * c + 16 * h;
    float sq_lo[S][NT], sq_hi[S][NT], sx_lo[NT], sx_hi[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      sx_lo[t] = sx_hi[t] = 0.0f;
#pragma unroll
      for (int s = 0; s < S; ++s) sq_lo[s][t] = sq_hi[s][t] = 0.0f;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float4 xl[NT], xh[NT];
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        xl[t] = ldx4(x + t * ldx + col_lo + 4 * q);
        xh[t] = ldx4(x + t * ldx + col_lo + 32 + 4 * q);
        sx_lo[t] += (xl[t].x + xl[t].y) + (xl[t].z + xl[t].w);
        sx_hi[t] += (xh[t].x + xh[t].y) + (xh[t].z + xh[t].w);
      }
#pragma unroll
      for (int s = 0; s < S; ++s) {
        const uint32_t a = dq::word_of(raw[s].qs, q);
        // byte e of a: column col_lo + 4q + e (low nibble), col_lo + 32 + 4q + e (high).
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float lo = dq::u2f((a >> (8 * e)) & 0xFu);
          const float hi = dq::u2f((a >> (8 * e + 4)) & 0xFu);
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            sq_lo[s][t] = fmaf(lo, comp(xl[t], e), sq_lo[s][t]);
            sq_hi[s][t] = fmaf(hi, comp(xh[t], e), sq_hi[s][t]);
          }
        }
      }
    }
#pragma unroll
    for (int s = 0; s < S; ++s) {
      const float d = dq::f16_bits_to_f32(raw[s].hdr.x);
      const float dmin = dq::f16_bits_to_f32(raw[s].hdr.x >> 16);
      uint32_t sc0, m0, sc1, m1;
      dq::scale_min_k4(raw[s].hdr, 2 * c, &sc0, &m0);
      dq::scale_min_k4(raw[s].hdr, 2 * c + 1, &sc1, &m1);
      const float d1 = d * static_cast<float>(sc0), mm1 = dmin * static_cast<float>(m0);
      const float d2 = d * static_cast<float>(sc1), mm2 = dmin * static_cast<float>(m1);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float a = acc[s][t];
        a = fmaf(d1, sq_lo[s][t], a);
        a = fmaf(-mm1, sx_lo[t], a);
        a = fmaf(d2, sq_hi[s][t], a);
        a = fmaf(-mm2, sx_hi[t], a);
        acc[s][t] = a;
      }
    }
  }
};

// Q6_K: per 8-value group of one scale, sum((q - 32) * x) in f32 ((q - 32) exact), times
// d * scale.
template <int NT, int S>
struct SmallDot<GgmlType::Q6_K, NT, S> {
  using U = dq::Unit<GgmlType::Q6_K>;
  using Raw = U::Raw;
  __device__ __forceinline__ static void unit(const Raw (&raw)[S], int64_t unit, const float* x,
                                              int64_t ldx, float (&acc)[S][NT]) {
    const int L = static_cast<int>(unit & 3), n = static_cast<int>(unit >> 2) & 1;
    const int64_t col0 = (unit >> 3) * 256 + 128 * n + 8 * L;
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      float4 xa[NT], xb[NT];
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        xa[t] = ldx4(x + t * ldx + col0 + 32 * p);
        xb[t] = ldx4(x + t * ldx + col0 + 32 * p + 4);
      }
#pragma unroll
      for (int s = 0; s < S; ++s) {
        const uint2 src = (p & 1) ? raw[s].ql_b : raw[s].ql_a;
        float sq[NT];
#pragma unroll
        for (int t = 0; t < NT; ++t) sq[t] = 0.0f;
#pragma unroll
        for (int w = 0; w < 2; ++w) {
          const uint32_t nib = (w == 0 ? src.x : src.y) >> (p >= 2 ? 4 : 0);
          const uint32_t hq = (w == 0 ? raw[s].qh.x : raw[s].qh.y) >> (2 * p);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const uint32_t q = ((nib >> (8 * e)) & 0xFu) | (((hq >> (8 * e)) & 3u) << 4);
            const float v = __uint_as_float(0x4B000000u | q) - 8388640.0f;  // q - 32, exact
#pragma unroll
            for (int t = 0; t < NT; ++t) sq[t] = fmaf(v, comp(w == 0 ? xa[t] : xb[t], e), sq[t]);
          }
        }
        const float ds = dq::f16_bits_to_f32(raw[s].d) * U::scale(raw[s], L, p);
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[s][t] = fmaf(ds, sq[t], acc[s][t]);
      }
    }
  }
};

template <GgmlType T, int NT, int W, int S, int B, int KS>
__global__ void __launch_bounds__(W * 32) gemv_small_kernel(const __grid_constant__ SParams p) {
  static_assert(W % KS == 0 && S % 2 == 0, "gemv_small: bad shape");
  using U = dq::Unit<T>;
  using Raw = typename U::Raw;
  constexpr int kGroups = W / KS;  // row groups per block
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % KS;
  const int64_t gw_raw = static_cast<int64_t>(blockIdx.x) * kGroups + warp / KS;
  // Whole warp groups past the end still take part in the barrier below, doing no work.
  const bool dead = gw_raw >= p.n_warps;
  const int64_t gw = dead ? p.n_warps - 1 : gw_raw;
  const bool pair = p.swiglu_out != nullptr;

  // Stream s: matrix ms[s], row rs[s] (clamped to a valid row; `live` says whether to write).
  dq::WeightView wv[S];
  int64_t rs[S];
  int ms[S];
  bool live[S];
#pragma unroll
  for (int s = 0; s < S; ++s) {
    int mi;
    int64_t row;
    if (pair) {
      mi = s & 1;
      row = gw * (S / 2) + (s >> 1);
      live[s] = row < p.m[0].rows;
    } else {
      const int64_t g = gw * S + s;
      live[s] = g < p.row_begin[p.n_mat];
      const int64_t gc = live[s] ? g : p.row_begin[p.n_mat] - 1;
      mi = 0;
#pragma unroll
      for (int i = 1; i < kGemvMaxGroup; ++i) {
        if (i < p.n_mat && gc >= p.row_begin[i]) mi = i;
      }
      row = gc - p.row_begin[mi];
    }
    if (row >= p.m[mi].rows) row = p.m[mi].rows - 1;
    ms[s] = mi;
    rs[s] = row;
    wv[s] = dq::WeightView{p.m[mi].w, p.m[mi].rows, p.k, p.m[mi].row_bytes};
  }

  float acc[S][NT];
#pragma unroll
  for (int s = 0; s < S; ++s) {
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[s][t] = 0.0f;
  }
  // Warp `part` of a group takes chunks part, part + KS, ... of 32 * B units.
  const int64_t u_begin = dead ? p.units : static_cast<int64_t>(part) * 32 * B + lane;
  for (int64_t u0 = u_begin; u0 < p.units; u0 += static_cast<int64_t>(32) * B * KS) {
    Raw raw[B][S];
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const int64_t unit = u0 + 32 * b;
      if (unit < p.units) {
#pragma unroll
        for (int s = 0; s < S; ++s) raw[b][s] = U::load(wv[s], rs[s], unit);
      }
    }
#pragma unroll
    for (int b = 0; b < B; ++b) {
      const int64_t unit = u0 + 32 * b;
      if (unit < p.units) SmallDot<T, NT, S>::unit(raw[b], unit, p.x, p.ldx, acc);
    }
  }
#pragma unroll
  for (int s = 0; s < S; ++s) {
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float v = acc[s][t];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
      acc[s][t] = v;
    }
  }
  if constexpr (KS > 1) {
    __shared__ float red[W][S][NT];
    if (lane == 0) {
#pragma unroll
      for (int s = 0; s < S; ++s) {
#pragma unroll
        for (int t = 0; t < NT; ++t) red[warp][s][t] = acc[s][t];
      }
    }
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int s = 0; s < S; ++s) {
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float v = red[warp][s][t];
#pragma unroll
        for (int j = 1; j < KS; ++j) v += red[warp + j][s][t];  // fixed order
        acc[s][t] = v;
      }
    }
  }
  if (dead || lane != 0) return;
  if (pair) {
#pragma unroll
    for (int r = 0; r < S / 2; ++r) {
      if (!live[2 * r]) continue;
      const int64_t row = rs[2 * r];
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float g = acc[2 * r][t], up = acc[2 * r + 1][t];
        p.m[0].y[t * p.m[0].ldy + row] = g;
        p.m[1].y[t * p.m[1].ldy + row] = up;
        p.swiglu_out[t * p.ld_swiglu + row] = silu(g) * up;
      }
    }
    return;
  }
#pragma unroll
  for (int s = 0; s < S; ++s) {
    if (!live[s]) continue;
    const SMat& M = p.m[ms[s]];
    const int64_t row = rs[s];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      M.y[t * M.ldy + row] = acc[s][t];
      if (M.add_out != nullptr) {
        M.add_out[t * M.ld_add + row] = M.add_in[t * M.ld_add + row] + acc[s][t];
      }
    }
  }
}

template <GgmlType T, int W, int S, int B, int KS>
void launch_type(const SParams& p, int n_tok, cudaStream_t stream) {
  constexpr int kGroups = W / KS;
  const unsigned blocks = static_cast<unsigned>((p.n_warps + kGroups - 1) / kGroups);
  switch (n_tok) {
    case 1:
      gemv_small_kernel<T, 1, W, S, B, KS><<<blocks, W * 32, 0, stream>>>(p);
      break;
    case 2:
      gemv_small_kernel<T, 2, W, S, B, KS><<<blocks, W * 32, 0, stream>>>(p);
      break;
    case 3:
      gemv_small_kernel<T, 3, W, S, B, KS><<<blocks, W * 32, 0, stream>>>(p);
      break;
    default:
      gemv_small_kernel<T, 4, W, S, B, KS><<<blocks, W * 32, 0, stream>>>(p);
      break;
  }
  LW_CUDA_LAUNCH_CHECK("gemv_small_kernel");
}

// Launches configuration <W, S, B, KS> for `pair` (a gate/up pair) or a group of `rows_sum`
// concatenated rows; p is complete except n_warps, which this sets.
template <int W, int S, int B, int KS>
void gemv_small_launch(GgmlType type, SParams p, bool pair, int64_t rows0, int64_t rows_sum,
                       int n_tok, cudaStream_t s) {
  p.n_warps = pair ? (rows0 + S / 2 - 1) / (S / 2) : (rows_sum + S - 1) / S;
  switch (type) {
    case GgmlType::Q4_K:
      launch_type<GgmlType::Q4_K, W, S, B, KS>(p, n_tok, s);
      break;
    case GgmlType::Q6_K:
      launch_type<GgmlType::Q6_K, W, S, B, KS>(p, n_tok, s);
      break;
    case GgmlType::Q8_0:
      launch_type<GgmlType::Q8_0, W, S, B, KS>(p, n_tok, s);
      break;
    case GgmlType::F16:
      launch_type<GgmlType::F16, W, S, B, KS>(p, n_tok, s);
      break;
    default:
      break;  // gemv_small() checked the type
  }
}

// The configurations, in LW_CUDA_GEMV_SMALL_CFG order (W, S, B, KS). Each is instantiated
// in one gemv_small_cfg*.cu file (split so nvcc builds them in parallel).
#define LW_GEMV_SMALL_CONFIGS(X) \
  X(0, 4, 4, 2, 1)               \
  X(1, 4, 4, 4, 1)               \
  X(2, 8, 2, 4, 1)               \
  X(3, 8, 4, 2, 2)               \
  X(4, 8, 2, 4, 4)               \
  X(5, 8, 4, 4, 2)

#define LW_GEMV_SMALL_DECLARE(i, W, S, B, KS)                                                    \
  extern template void gemv_small_launch<W, S, B, KS>(GgmlType, SParams, bool, int64_t, int64_t, \
                                                      int, cudaStream_t);
#define LW_GEMV_SMALL_INSTANTIATE(W, S, B, KS)                                                 \
  template void gemv_small_launch<W, S, B, KS>(GgmlType, SParams, bool, int64_t, int64_t, int, \
                                               cudaStream_t);

}  // namespace lw::cuda::small_detail
