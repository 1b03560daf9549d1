#include "kernels/cuda/gemv_small.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dequant.cuh"

namespace lw::cuda {
namespace {

constexpr int kWarps = 4;            // warps per block
constexpr int kThreads = kWarps * 32;
constexpr int kStreams = 4;          // row streams per warp (rows, or gate/up rows of a pair)
constexpr int kBatch = 2;            // units per lane loaded before any is used

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
  int64_t n_warps;
};

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }
__device__ __forceinline__ float4 ldx4(const float* p) {
  return __ldg(reinterpret_cast<const float4*>(p));
}
__device__ __forceinline__ float comp(const float4& v, int e) {
  return e == 0 ? v.x : (e == 1 ? v.y : (e == 2 ? v.z : v.w));
}

// Generic: the reference dequantization to f32, then f32 dot products (Q8_0, F16).
template <GgmlType T, int NT>
struct SmallDot {
  using U = dq::Unit<T>;
  using Raw = typename U::Raw;
  __device__ __forceinline__ static void unit(const Raw (&raw)[kStreams], int64_t unit,
                                              const float* x, int64_t ldx,
                                              float (&acc)[kStreams][NT]) {
#pragma unroll
    for (int s = 0; s < kStreams; ++s) {
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
template <int NT>
struct SmallDot<GgmlType::Q4_K, NT> {
  using Raw = dq::Unit<GgmlType::Q4_K>::Raw;
  __device__ __forceinline__ static void unit(const Raw (&raw)[kStreams], int64_t unit,
                                              const float* x, int64_t ldx,
                                              float (&acc)[kStreams][NT]) {
    const int u = static_cast<int>(unit & 7), c = u >> 1, h = u & 1;
    const int64_t col_lo = (unit >> 3) * 256 + 64 * c + 16 * h;
    float sq_lo[kStreams][NT], sq_hi[kStreams][NT], sx_lo[NT], sx_hi[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      sx_lo[t] = sx_hi[t] = 0.0f;
#pragma unroll
      for (int s = 0; s < kStreams; ++s) sq_lo[s][t] = sq_hi[s][t] = 0.0f;
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
      for (int s = 0; s < kStreams; ++s) {
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
    for (int s = 0; s < kStreams; ++s) {
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
template <int NT>
struct SmallDot<GgmlType::Q6_K, NT> {
  using U = dq::Unit<GgmlType::Q6_K>;
  using Raw = U::Raw;
  __device__ __forceinline__ static void unit(const Raw (&raw)[kStreams], int64_t unit,
                                              const float* x, int64_t ldx,
                                              float (&acc)[kStreams][NT]) {
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
      for (int s = 0; s < kStreams; ++s) {
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

template <GgmlType T, int NT>
__global__ void __launch_bounds__(kThreads) gemv_small_kernel(const __grid_constant__ SParams p) {
  using U = dq::Unit<T>;
  using Raw = typename U::Raw;
  const int lane = threadIdx.x & 31;
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (gw >= p.n_warps) return;  // whole warps only
  const bool pair = p.swiglu_out != nullptr;

  // Stream s: matrix ms[s], row rs[s] (clamped to a valid row; `live` says whether to write).
  dq::WeightView wv[kStreams];
  int64_t rs[kStreams];
  int ms[kStreams];
  bool live[kStreams];
#pragma unroll
  for (int s = 0; s < kStreams; ++s) {
    int mi;
    int64_t row;
    if (pair) {
      mi = s & 1;
      row = gw * (kStreams / 2) + (s >> 1);
      live[s] = row < p.m[0].rows;
    } else {
      const int64_t g = gw * kStreams + s;
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

  float acc[kStreams][NT];
#pragma unroll
  for (int s = 0; s < kStreams; ++s) {
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[s][t] = 0.0f;
  }
  for (int64_t u0 = lane; u0 < p.units; u0 += 32 * kBatch) {
    Raw raw[kBatch][kStreams];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t unit = u0 + 32 * b;
      if (unit < p.units) {
#pragma unroll
        for (int s = 0; s < kStreams; ++s) raw[b][s] = U::load(wv[s], rs[s], unit);
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t unit = u0 + 32 * b;
      if (unit < p.units) SmallDot<T, NT>::unit(raw[b], unit, p.x, p.ldx, acc);
    }
  }
#pragma unroll
  for (int s = 0; s < kStreams; ++s) {
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float v = acc[s][t];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
      acc[s][t] = v;
    }
  }
  if (lane != 0) return;
  if (pair) {
#pragma unroll
    for (int r = 0; r < kStreams / 2; ++r) {
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
  for (int s = 0; s < kStreams; ++s) {
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

template <GgmlType T>
void launch_type(const SParams& p, int n_tok, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((p.n_warps + kWarps - 1) / kWarps);
  switch (n_tok) {
    case 1: gemv_small_kernel<T, 1><<<blocks, kThreads, 0, stream>>>(p); break;
    case 2: gemv_small_kernel<T, 2><<<blocks, kThreads, 0, stream>>>(p); break;
    case 3: gemv_small_kernel<T, 3><<<blocks, kThreads, 0, stream>>>(p); break;
    default: gemv_small_kernel<T, 4><<<blocks, kThreads, 0, stream>>>(p); break;
  }
  LW_CUDA_LAUNCH_CHECK("gemv_small_kernel");
}

}  // namespace

bool gemv_small_supported(GgmlType type, int64_t k, int n_tok) {
  const bool covered = type == GgmlType::Q4_K || type == GgmlType::Q6_K ||
                       type == GgmlType::Q8_0 || type == GgmlType::F16;
  return covered && n_tok >= 1 && n_tok <= kGemvSmallMaxTokens && gemv_supported(type, k);
}

bool gemv_small_enabled_by_env() {
  static const bool enabled = [] {
    const char* v = std::getenv("LW_CUDA_GEMV_SMALL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

void gemv_small(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx,
                int n_tok, const GemvSwiglu* swiglu, CudaStream stream) {
  const GgmlType type = mats[0].type;
  LW_CHECK(n_mats >= 1 && n_mats <= kGemvMaxGroup && gemv_small_supported(type, k, n_tok),
           "gemv_small: type " + type_name(static_cast<uint32_t>(type)) + " k=" +
               std::to_string(k) + " n_tok=" + std::to_string(n_tok));
  const bool pair = swiglu != nullptr && swiglu->out != nullptr;
  LW_CHECK(!pair || (n_mats == 2 && mats[0].rows == mats[1].rows),
           "gemv_small: swiglu needs two matrices of equal rows");
  SParams p{};
  int64_t rb = 0;
  for (int i = 0; i < n_mats; ++i) {
    LW_CHECK(mats[i].type == type && mats[i].rows >= 1 && mats[i].w != nullptr &&
                 mats[i].y != nullptr,
             "gemv_small: matrix " + std::to_string(i));
    SMat& m = p.m[i];
    m.w = static_cast<const uint8_t*>(mats[i].w);
    m.rows = mats[i].rows;
    m.row_bytes = weight_bytes(type, 1, k);
    m.y = mats[i].y;
    m.ldy = mats[i].ldy;
    m.add_in = mats[i].add_in;
    m.add_out = mats[i].add_out;
    m.ld_add = mats[i].ld_add;
    p.row_begin[i] = rb;
    rb += m.rows;
  }
  for (int i = n_mats; i <= kGemvMaxGroup; ++i) p.row_begin[i] = rb;
  p.n_mat = n_mats;
  p.k = k;
  p.units = k / 32;
  p.x = x;
  p.ldx = ldx;
  p.swiglu_out = pair ? swiglu->out : nullptr;
  p.ld_swiglu = pair ? swiglu->ld_out : 0;
  p.n_warps = pair ? (mats[0].rows + kStreams / 2 - 1) / (kStreams / 2)
                   : (rb + kStreams - 1) / kStreams;
  const cudaStream_t s = to_stream(stream);
  switch (type) {
    case GgmlType::Q4_K: launch_type<GgmlType::Q4_K>(p, n_tok, s); break;
    case GgmlType::Q6_K: launch_type<GgmlType::Q6_K>(p, n_tok, s); break;
    case GgmlType::Q8_0: launch_type<GgmlType::Q8_0>(p, n_tok, s); break;
    case GgmlType::F16: launch_type<GgmlType::F16>(p, n_tok, s); break;
    default: LW_CHECK(false, "gemv_small: unsupported type");
  }
}

}  // namespace lw::cuda
