// The matmul row kernels with AVX2/FMA/F16C intrinsics. Every function here carries the
// target attribute instead of the whole file being built with -mavx2, so the library still
// runs on CPUs without AVX2 (matmul() only calls in after checking the CPU at run time).
// Same algorithm as matmul_portable.cpp: unpack a weight block once, dot it with every token.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/matmul_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define LW_AVX2 __attribute__((target("avx2,fma,f16c")))
// Loops over chunks, tokens and rows are unrolled on purpose (#pragma GCC unroll): their
// trip counts are template constants and their accumulators must live in registers.

namespace lw::matmul_detail {
namespace {

// A K-quant super-block unpacked for maddubs (see UnpackedK in matmul_portable.cpp):
// q = unsigned levels, scale[c] = the int16 multipliers for the 16 products of 32-byte chunk c,
// min = per-16-value min terms lined up with ActQ8K::bsums.
struct alignas(32) UnpackedK {
  uint8_t q[kQK_K];
  int16_t scale[8][16];
  int16_t min[16];
  float d;
  float dmin;
};

LW_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LW_AVX2 inline void store(void* p, __m256i v) {
  _mm256_store_si256(reinterpret_cast<__m256i*>(p), v);
}
LW_AVX2 inline __m256i load(const void* p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}
LW_AVX2 inline __m256i loadu(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Q4_K / Q5_K packed 6-bit scales and mins -> one vector: bytes 0..7 = sc0..7, 8..15 = m0..7.
LW_AVX2 inline __m128i k4_scales_mins(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  // Bytes 0..3: sc0..3 | tops of sc4..7; 4..7: m0..3 | tops of m4..7; 8..11: low nibbles.
  const uint32_t sc_lo = w[0] & 0x3f3f3f3fu;
  const uint32_t m_lo = w[1] & 0x3f3f3f3fu;
  const uint32_t sc_hi = (w[2] & 0x0f0f0f0fu) | (((w[0] >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((w[2] >> 4) & 0x0f0f0f0fu) | (((w[1] >> 6) & 0x03030303u) << 4);
  return _mm_set_epi32(static_cast<int>(m_hi), static_cast<int>(m_lo), static_cast<int>(sc_hi),
                       static_cast<int>(sc_lo));
}

// Sixteen int16 copies of byte c of v (Q4_K/Q5_K: the scale of 32-value chunk c).
LW_AVX2 inline __m256i k4_chunk_scale(__m128i v, int c) {
  return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, _mm_set1_epi8(static_cast<char>(c))));
}
// The eight mins, each repeated for its two groups of 16 values (lined up with bsums).
LW_AVX2 inline __m256i k4_mins(__m128i v) {
  const __m128i m =
      _mm_shuffle_epi8(v, _mm_set_epi8(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8));
  return _mm256_cvtepu8_epi16(m);
}
// Q6_K: eight int16 copies of sc[2c], then eight of sc[2c+1] (chunk c holds groups 2c, 2c+1).
LW_AVX2 inline __m256i q6_chunk_scale(__m128i sc, int c) {
  const __m128i mask =
      _mm_set_epi64x(0x0101010101010101ll * (2 * c + 1), 0x0101010101010101ll * (2 * c));
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, mask));
}

LW_AVX2 inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// The unsigned 5-bit levels of Q5_K chunk pair j: low nibbles + bit 2j, high nibbles + bit 2j+1.
LW_AVX2 inline void q5_levels(__m256i bits, __m256i hbits, int j, __m256i* lo, __m256i* hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i sixteen = _mm256_set1_epi8(16);
  const __m256i bl = _mm256_set1_epi8(static_cast<char>(1 << (2 * j)));
  const __m256i bh = _mm256_set1_epi8(static_cast<char>(2 << (2 * j)));
  const __m256i hl = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, bl), bl), sixteen);
  const __m256i hh = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, bh), bh), sixteen);
  *lo = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
  *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
}

// The unsigned 6-bit levels of Q6_K half n: four chunks (values 128n + 32i .. +31).
LW_AVX2 inline void q6_levels(const BlockQ6_K& b, int n, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ql0 = loadu(b.ql + 64 * n);
  const __m256i ql1 = loadu(b.ql + 64 * n + 32);
  const __m256i qh = loadu(b.qh + 32 * n);
  // Shifts are 16-bit but every field stays inside its byte after the masks.
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                         _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                         _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                         _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
  q[3] = _mm256_or_si256(
      _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
      _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(static_cast<char>(0xC0))), 2));
}

LW_AVX2 void unpack_q4k(const BlockQ4_K& b, UnpackedK* u) {
  u->d = half_to_float(b.d);
  u->dmin = half_to_float(b.dmin);
  const __m128i sm = k4_scales_mins(b.scales);
  #pragma GCC unroll 8
  for (int c = 0; c < 8; ++c) store(u->scale[c], k4_chunk_scale(sm, c));
  store(u->min, k4_mins(sm));
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  #pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const __m256i bits = loadu(b.qs + 32 * j);
    store(u->q + 64 * j, _mm256_and_si256(bits, m4));
    store(u->q + 64 * j + 32, _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4));
  }
}

LW_AVX2 void unpack_q5k(const BlockQ5_K& b, UnpackedK* u) {
  u->d = half_to_float(b.d);
  u->dmin = half_to_float(b.dmin);
  const __m128i sm = k4_scales_mins(b.scales);
  #pragma GCC unroll 8
  for (int c = 0; c < 8; ++c) store(u->scale[c], k4_chunk_scale(sm, c));
  store(u->min, k4_mins(sm));
  const __m256i hbits = loadu(b.qh);
  #pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    __m256i lo, hi;
    q5_levels(loadu(b.qs + 32 * j), hbits, j, &lo, &hi);
    store(u->q + 64 * j, lo);
    store(u->q + 64 * j + 32, hi);
  }
}

LW_AVX2 void unpack_q6k(const BlockQ6_K& b, UnpackedK* u) {
  u->d = u->dmin = half_to_float(b.d);
  const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  #pragma GCC unroll 8
  for (int c = 0; c < 8; ++c) store(u->scale[c], q6_chunk_scale(sc, c));
  store(u->min, _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc), 5));  // 32 * sc
  #pragma GCC unroll 8
  for (int n = 0; n < 2; ++n) {
    __m256i q[4];
    q6_levels(b, n, q);
    #pragma GCC unroll 8
    for (int i = 0; i < 4; ++i) store(u->q + 128 * n + 32 * i, q[i]);
  }
}

LW_AVX2 inline void unpack_any(GgmlType type, const uint8_t* row, int64_t b, UnpackedK* u) {
  switch (type) {
    case GgmlType::Q4_K:
      unpack_q4k(reinterpret_cast<const BlockQ4_K*>(row)[b], u);
      return;
    case GgmlType::Q5_K:
      unpack_q5k(reinterpret_cast<const BlockQ5_K*>(row)[b], u);
      return;
    default:
      unpack_q6k(reinterpret_cast<const BlockQ6_K*>(row)[b], u);
      return;
  }
}

// acc += d * dx * cvt(sumi) - dmin * dx * cvt(summ), lane-wise.
LW_AVX2 inline __m256 k_finish(float d, float dmin, float dx, __m256i sumi, __m256i summ,
                               __m256 acc) {
  acc = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi), acc);
  return _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dx), _mm256_cvtepi32_ps(summ), acc);
}

// ---- one token: decode straight from the packed block, nothing stored ----

LW_AVX2 inline __m256 dot1_q4k(const BlockQ4_K& b, const ActQ8K& x, __m256 acc) {
  const __m128i sm = k4_scales_mins(b.scales);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i sumi = _mm256_setzero_si256();
  #pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const __m256i bits = loadu(b.qs + 32 * j);
    const __m256i pl = _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), load(x.qs + 64 * j));
    const __m256i ph = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                                            load(x.qs + 64 * j + 32));
    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pl, k4_chunk_scale(sm, 2 * j)));
    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(ph, k4_chunk_scale(sm, 2 * j + 1)));
  }
  const __m256i summ = _mm256_madd_epi16(load(x.bsums), k4_mins(sm));
  return k_finish(half_to_float(b.d), half_to_float(b.dmin), x.d, sumi, summ, acc);
}

LW_AVX2 inline __m256 dot1_q5k(const BlockQ5_K& b, const ActQ8K& x, __m256 acc) {
  const __m128i sm = k4_scales_mins(b.scales);
  const __m256i hbits = loadu(b.qh);
  __m256i sumi = _mm256_setzero_si256();
  #pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    __m256i lo, hi;
    q5_levels(loadu(b.qs + 32 * j), hbits, j, &lo, &hi);
    const __m256i pl = _mm256_maddubs_epi16(lo, load(x.qs + 64 * j));
    const __m256i ph = _mm256_maddubs_epi16(hi, load(x.qs + 64 * j + 32));
    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pl, k4_chunk_scale(sm, 2 * j)));
    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(ph, k4_chunk_scale(sm, 2 * j + 1)));
  }
  const __m256i summ = _mm256_madd_epi16(load(x.bsums), k4_mins(sm));
  return k_finish(half_to_float(b.d), half_to_float(b.dmin), x.d, sumi, summ, acc);
}

LW_AVX2 inline __m256 dot1_q6k(const BlockQ6_K& b, const ActQ8K& x, __m256 acc) {
  const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  __m256i sumi = _mm256_setzero_si256();
  #pragma GCC unroll 8
  for (int n = 0; n < 2; ++n) {
    __m256i q[4];
    q6_levels(b, n, q);
    #pragma GCC unroll 8
    for (int i = 0; i < 4; ++i) {
      const __m256i p = _mm256_maddubs_epi16(q[i], load(x.qs + 128 * n + 32 * i));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, q6_chunk_scale(sc, 4 * n + i)));
    }
  }
  const __m256i summ =
      _mm256_madd_epi16(load(x.bsums), _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc), 5));
  const float d = half_to_float(b.d);
  return k_finish(d, d, x.d, sumi, summ, acc);
}

template <typename Block, __m256 (*kDot)(const Block&, const ActQ8K&, __m256)>
LW_AVX2 void rows_kquant_1tok(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.k / kQK_K;
  const ActQ8K* xq = static_cast<const ActQ8K*>(a.xq);
  for (int64_t r = r0; r < r1; ++r) {
    const Block* row = reinterpret_cast<const Block*>(a.w + r * a.row_bytes);
    __m256 acc0 = _mm256_setzero_ps();
    __m256 acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      acc0 = kDot(row[b], xq[b], acc0);
      acc1 = kDot(row[b + 1], xq[b + 1], acc1);
    }
    if (b < nb) acc0 = kDot(row[b], xq[b], acc0);
    a.y[r] = hsum(_mm256_add_ps(acc0, acc1));
  }
}

// ---- several tokens: unpack a block once, then T tokens per pass with register sums ----

// acc[t] (8 floats each) += the block's dot with token t, for T consecutive tokens.
template <int T>
LW_AVX2 void kernel_k(const UnpackedK& u, const ActQ8K* x, float* acc) {
  __m256i sumi[T];
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
  #pragma GCC unroll 8
  for (int c = 0; c < 8; ++c) {
    const __m256i q = load(u.q + 32 * c);
    const __m256i s = load(u.scale[c]);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256i p = _mm256_maddubs_epi16(q, load(x[t].qs + 32 * c));
      sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, s));
    }
  }
  const __m256i mins = load(u.min);
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    const __m256i summ = _mm256_madd_epi16(load(x[t].bsums), mins);
    const __m256 prev = _mm256_loadu_ps(acc + 8 * t);
    _mm256_storeu_ps(acc + 8 * t, k_finish(u.d, u.dmin, x[t].d, sumi[t], summ, prev));
  }
}

LW_AVX2 void kernel_k_tail(int n, const UnpackedK& u, const ActQ8K* x, float* acc) {
  switch (n) {
    case 7:
      kernel_k<7>(u, x, acc);
      return;
    case 6:
      kernel_k<6>(u, x, acc);
      return;
    case 5:
      kernel_k<5>(u, x, acc);
      return;
    case 4:
      kernel_k<4>(u, x, acc);
      return;
    case 3:
      kernel_k<3>(u, x, acc);
      return;
    case 2:
      kernel_k<2>(u, x, acc);
      return;
    case 1:
      kernel_k<1>(u, x, acc);
      return;
    default:
      return;
  }
}

// Tokens per tile so one tile of quantized activations (~256 KiB) stays in L2 while a group of
// rows passes over it; rows per group so their weights stay in L2 across all tiles.
constexpr int64_t kTileBytes = 256 * 1024;
constexpr int64_t kRowGroup = 16;

int64_t token_tile(int64_t n_tok, int64_t bytes_per_token, int64_t multiple) {
  int64_t tt = std::max<int64_t>(multiple, kTileBytes / std::max<int64_t>(1, bytes_per_token));
  tt = tt / multiple * multiple;
  return std::min(tt, n_tok);
}

LW_AVX2 void rows_kquant(const MatmulArgs& a, int64_t r0, int64_t r1) {
  if (a.n_tok == 1) {
    switch (a.type) {
      case GgmlType::Q4_K:
        return rows_kquant_1tok<BlockQ4_K, dot1_q4k>(a, r0, r1);
      case GgmlType::Q5_K:
        return rows_kquant_1tok<BlockQ5_K, dot1_q5k>(a, r0, r1);
      default:
        return rows_kquant_1tok<BlockQ6_K, dot1_q6k>(a, r0, r1);
    }
  }
  const int64_t nb = a.k / kQK_K;
  const int64_t n_tok = a.n_tok;
  const ActQ8K* xq = static_cast<const ActQ8K*>(a.xq);
  const int64_t tt = token_tile(n_tok, nb * static_cast<int64_t>(sizeof(ActQ8K)), 8);
  std::vector<float> acc(static_cast<size_t>(8 * tt));
  UnpackedK u;
  for (int64_t rg = r0; rg < r1; rg += kRowGroup) {
    const int64_t rg_end = std::min(r1, rg + kRowGroup);
    for (int64_t t0 = 0; t0 < n_tok; t0 += tt) {
      const int64_t nt = std::min(tt, n_tok - t0);
      for (int64_t r = rg; r < rg_end; ++r) {
        const uint8_t* row = a.w + r * a.row_bytes;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t b = 0; b < nb; ++b) {
          unpack_any(a.type, row, b, &u);
          const ActQ8K* xb = xq + b * n_tok + t0;
          int64_t t = 0;
          for (; t + 8 <= nt; t += 8) kernel_k<8>(u, xb + t, acc.data() + 8 * t);
          kernel_k_tail(static_cast<int>(nt - t), u, xb + t, acc.data() + 8 * t);
        }
        for (int64_t t = 0; t < nt; ++t) {
          a.y[(t0 + t) * a.rows + r] = hsum(_mm256_loadu_ps(&acc[8 * t]));
        }
      }
    }
  }
}

// ---- Q8_0 ----

// One Q8_0 block against one token: d_w * d_x * sum(w * x) added lane-wise to acc.
// aw = |w| (as unsigned, so -128 reads 128); the sign moves onto x.
LW_AVX2 inline __m256 dot_q8_0(__m256i aw, __m256i w, float dw, const ActQ8_0& x, __m256 acc) {
  const __m256i xs = _mm256_sign_epi8(loadu(x.qs), w);
  const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, xs), _mm256_set1_epi16(1));
  return _mm256_fmadd_ps(_mm256_set1_ps(dw * x.d), _mm256_cvtepi32_ps(s), acc);
}

// T consecutive tokens against one row, accumulators in registers.
template <int T>
LW_AVX2 void kernel_q8_0(const BlockQ8_0* row, int64_t nb, const ActQ8_0* xq, int64_t n_tok,
                         float* y, int64_t rows) {
  __m256 acc[T];
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i w = loadu(row[b].qs);
    const __m256i aw = _mm256_sign_epi8(w, w);
    const float dw = half_to_float(row[b].d);
    const ActQ8_0* xb = xq + b * n_tok;
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[t] = dot_q8_0(aw, w, dw, xb[t], acc[t]);
  }
  #pragma GCC unroll 8
  for (int t = 0; t < T; ++t) y[t * rows] = hsum(acc[t]);
}

LW_AVX2 void rows_q8_0(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.k / kQK8_0;
  const int64_t n_tok = a.n_tok;
  const ActQ8_0* xq = static_cast<const ActQ8_0*>(a.xq);
  const int64_t tt = token_tile(n_tok, nb * static_cast<int64_t>(sizeof(ActQ8_0)), 4);
  for (int64_t rg = r0; rg < r1; rg += kRowGroup) {
    const int64_t rg_end = std::min(r1, rg + kRowGroup);
    for (int64_t t0 = 0; t0 < n_tok; t0 += tt) {
      const int64_t t_end = std::min(n_tok, t0 + tt);
      for (int64_t r = rg; r < rg_end; ++r) {
        const BlockQ8_0* row = reinterpret_cast<const BlockQ8_0*>(a.w + r * a.row_bytes);
        int64_t t = t0;
        for (; t + 4 <= t_end; t += 4)
          kernel_q8_0<4>(row, nb, xq + t, n_tok, a.y + t * a.rows + r, a.rows);
        switch (t_end - t) {
          case 3:
            kernel_q8_0<3>(row, nb, xq + t, n_tok, a.y + t * a.rows + r, a.rows);
            break;
          case 2:
            kernel_q8_0<2>(row, nb, xq + t, n_tok, a.y + t * a.rows + r, a.rows);
            break;
          case 1:
            kernel_q8_0<1>(row, nb, xq + t, n_tok, a.y + t * a.rows + r, a.rows);
            break;
          default:
            break;
        }
      }
    }
  }
}

// ---- float weights ----

// Eight weights widened to f32: F32 as is, F16 via F16C, BF16 by a 16-bit shift.
template <GgmlType kType>
LW_AVX2 inline __m256 load8(const void* row, int64_t i) {
  if constexpr (kType == GgmlType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + i);
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + i));
    if constexpr (kType == GgmlType::F16) {
      return _mm256_cvtph_ps(h);
    } else {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
  }
}

template <GgmlType kType>
LW_AVX2 inline float load1(const void* row, int64_t i) {
  if constexpr (kType == GgmlType::F32) {
    return static_cast<const float*>(row)[i];
  } else if constexpr (kType == GgmlType::F16) {
    return half_to_float(static_cast<const uint16_t*>(row)[i]);
  } else {
    return bf16_to_fp32(static_cast<const uint16_t*>(row)[i]);
  }
}

// R rows x T tokens over the whole k with register accumulators: each weight vector is
// widened once per T tokens and each activation vector loaded once per R rows.
template <GgmlType kType, int R, int T>
LW_AVX2 void kernel_float(const MatmulArgs& a, int64_t r0, int64_t t0) {
  const int64_t k = a.k;
  const float* x = a.x + t0 * k;
  const void* w[R];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = a.w + (r0 + r) * a.row_bytes;
  __m256 acc[R][T];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[R];
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = load8<kType>(w[r], i);
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * k + i);
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[r][t]);
      for (int64_t j = i; j < k; ++j) s += load1<kType>(w[r], j) * x[t * k + j];
      a.y[(t0 + t) * a.rows + r0 + r] = s;
    }
  }
}

// Rows [r0, r0 + R) against tokens [t0, t1).
template <GgmlType kType, int R>
LW_AVX2 void kernel_float_tokens(const MatmulArgs& a, int64_t r0, int64_t t0, int64_t t1) {
  int64_t t = t0;
  if constexpr (R <= 2) {
    for (; t + 4 <= t1; t += 4) kernel_float<kType, R, 4>(a, r0, t);
  }
  for (; t + 2 <= t1; t += 2) kernel_float<kType, R, 2>(a, r0, t);
  if (t < t1) kernel_float<kType, R, 1>(a, r0, t);
}

template <GgmlType kType>
LW_AVX2 void rows_float_typed(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t k = a.k;
  const int64_t tt = token_tile(a.n_tok, k * static_cast<int64_t>(sizeof(float)), 4);
  // Few tokens: 4 rows at a time (enough independent FMA chains); more: 2 rows x 4 tokens.
  const bool few = a.n_tok < 4;
  const int64_t group = few ? 4 : kRowGroup;
  for (int64_t rg = r0; rg < r1; rg += group) {
    const int64_t rg_end = std::min(r1, rg + group);
    for (int64_t t0 = 0; t0 < a.n_tok; t0 += tt) {
      const int64_t t1 = std::min(a.n_tok, t0 + tt);
      int64_t r = rg;
      if (few) {
        for (; r + 4 <= rg_end; r += 4) kernel_float_tokens<kType, 4>(a, r, t0, t1);
      }
      for (; r + 2 <= rg_end; r += 2) kernel_float_tokens<kType, 2>(a, r, t0, t1);
      if (r < rg_end) kernel_float_tokens<kType, 1>(a, r, t0, t1);
    }
  }
}

LW_AVX2 void rows_float(const MatmulArgs& a, int64_t r0, int64_t r1) {
  switch (a.type) {
    case GgmlType::F32:
      return rows_float_typed<GgmlType::F32>(a, r0, r1);
    case GgmlType::F16:
      return rows_float_typed<GgmlType::F16>(a, r0, r1);
    default:
      return rows_float_typed<GgmlType::BF16>(a, r0, r1);
  }
}

}  // namespace

void rows_avx2(const MatmulArgs& a, int64_t r0, int64_t r1) {
  switch (a.type) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      rows_kquant(a, r0, r1);
      return;
    case GgmlType::Q8_0:
      rows_q8_0(a, r0, r1);
      return;
    default:
      rows_float(a, r0, r1);
      return;
  }
}

}  // namespace lw::matmul_detail

#else  // not x86: matmul_has_avx2() is false, so this is never called.

namespace lw::matmul_detail {
void rows_avx2(const MatmulArgs&, int64_t, int64_t) {
  LW_CHECK(false, "rows_avx2 called on a CPU without AVX2");
}
}  // namespace lw::matmul_detail

#endif
