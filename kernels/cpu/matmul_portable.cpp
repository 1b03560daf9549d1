// The matmul row kernels in plain C++: the same algorithm as the AVX2 path (8-bit activations,
// integer dot products per block, per-token accumulators) with no vector intrinsics, so it
// runs on any CPU and tests the algorithm wherever the suite runs.
#include <algorithm>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/matmul_internal.h"

namespace lw::matmul_detail {
namespace {

// A K-quant super-block unpacked to one unsigned level per value plus, per group of 16 values,
// an integer scale and min term: x[v] ~ d * scale[v/16] * q[v] - dmin * min[v/16].
// (Q6_K: q in [0, 64), scale = sc, min = 32 * sc and dmin = d, which spells d*sc*(q-32).)
struct UnpackedK {
  uint8_t q[kQK_K];
  int16_t scale[kQK_K / 16];
  int16_t min[kQK_K / 16];
  float d;
  float dmin;
};

void unpack_q4k(const BlockQ4_K& b, UnpackedK* u) {
  u->d = fp16_to_fp32(b.d);
  u->dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, b.scales, &sc, &m);
    u->scale[2 * j] = u->scale[2 * j + 1] = sc;
    u->min[2 * j] = u->min[2 * j + 1] = m;
  }
  for (int j = 0; j < 4; ++j) {
    for (int l = 0; l < 32; ++l) {
      u->q[64 * j + l] = b.qs[32 * j + l] & 0xF;
      u->q[64 * j + 32 + l] = b.qs[32 * j + l] >> 4;
    }
  }
}

void unpack_q5k(const BlockQ5_K& b, UnpackedK* u) {
  u->d = fp16_to_fp32(b.d);
  u->dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, b.scales, &sc, &m);
    u->scale[2 * j] = u->scale[2 * j + 1] = sc;
    u->min[2 * j] = u->min[2 * j + 1] = m;
  }
  for (int j = 0; j < 4; ++j) {
    for (int l = 0; l < 32; ++l) {
      const int h = b.qh[l] >> (2 * j);
      u->q[64 * j + l] = static_cast<uint8_t>((b.qs[32 * j + l] & 0xF) | ((h & 1) << 4));
      u->q[64 * j + 32 + l] = static_cast<uint8_t>((b.qs[32 * j + l] >> 4) | ((h & 2) << 3));
    }
  }
}

void unpack_q6k(const BlockQ6_K& b, UnpackedK* u) {
  u->d = u->dmin = fp16_to_fp32(b.d);
  for (int g = 0; g < 16; ++g) {
    u->scale[g] = b.scales[g];
    u->min[g] = static_cast<int16_t>(32 * b.scales[g]);
  }
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b.ql + 64 * n;
    const uint8_t* qh = b.qh + 32 * n;
    uint8_t* q = u->q + 128 * n;
    for (int l = 0; l < 32; ++l) {
      q[l + 0] = static_cast<uint8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
      q[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
      q[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      q[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}

float dot_k(const UnpackedK& u, const ActQ8K& x) {
  int32_t sumi = 0;
  for (int g = 0; g < 16; ++g) {
    int32_t s = 0;
    for (int l = 0; l < 16; ++l) s += u.q[16 * g + l] * x.qs[16 * g + l];
    sumi += u.scale[g] * s;
  }
  int32_t summ = 0;
  for (int g = 0; g < 16; ++g) summ += u.min[g] * x.bsums[g];
  return x.d * (u.d * static_cast<float>(sumi) - u.dmin * static_cast<float>(summ));
}

void rows_kquant(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.k / kQK_K;
  const ActQ8K* xq = static_cast<const ActQ8K*>(a.xq);
  std::vector<float> acc(static_cast<size_t>(a.n_tok));
  UnpackedK u;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = a.w + r * a.row_bytes;
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      switch (a.type) {
        case GgmlType::Q4_K:
          unpack_q4k(reinterpret_cast<const BlockQ4_K*>(row)[b], &u);
          break;
        case GgmlType::Q5_K:
          unpack_q5k(reinterpret_cast<const BlockQ5_K*>(row)[b], &u);
          break;
        default:
          unpack_q6k(reinterpret_cast<const BlockQ6_K*>(row)[b], &u);
          break;
      }
      const ActQ8K* xb = xq + b * a.n_tok;
      for (int64_t t = 0; t < a.n_tok; ++t) acc[t] += dot_k(u, xb[t]);
    }
    for (int64_t t = 0; t < a.n_tok; ++t) a.y[t * a.rows + r] = acc[t];
  }
}

void rows_q8_0(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.k / kQK8_0;
  const ActQ8_0* xq = static_cast<const ActQ8_0*>(a.xq);
  std::vector<float> acc(static_cast<size_t>(a.n_tok));
  for (int64_t r = r0; r < r1; ++r) {
    const BlockQ8_0* row = reinterpret_cast<const BlockQ8_0*>(a.w + r * a.row_bytes);
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      const float d = fp16_to_fp32(row[b].d);
      const ActQ8_0* xb = xq + b * a.n_tok;
      for (int64_t t = 0; t < a.n_tok; ++t) {
        int32_t s = 0;
        for (int l = 0; l < kQK8_0; ++l) s += row[b].qs[l] * xb[t].qs[l];
        acc[t] += d * xb[t].d * static_cast<float>(s);
      }
    }
    for (int64_t t = 0; t < a.n_tok; ++t) a.y[t * a.rows + r] = acc[t];
  }
}

// Float weights: widen the row to f32 once, then one dot product per token with 8 partial
// sums (a fixed order, so results do not depend on the compiler's vectorization).
void rows_float(const MatmulArgs& a, int64_t r0, int64_t r1) {
  const int64_t k = a.k;
  std::vector<float> buf(a.type == GgmlType::F32 ? 0 : static_cast<size_t>(k));
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = a.w + r * a.row_bytes;
    const float* wf;
    if (a.type == GgmlType::F32) {
      wf = reinterpret_cast<const float*>(row);
    } else {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
      if (a.type == GgmlType::F16) {
        for (int64_t i = 0; i < k; ++i) buf[i] = fp16_to_fp32(h[i]);
      } else {
        for (int64_t i = 0; i < k; ++i) buf[i] = bf16_to_fp32(h[i]);
      }
      wf = buf.data();
    }
    for (int64_t t = 0; t < a.n_tok; ++t) {
      const float* xt = a.x + t * k;
      float s[8] = {};
      int64_t i = 0;
      for (; i + 8 <= k; i += 8) {
        for (int l = 0; l < 8; ++l) s[l] += wf[i + l] * xt[i + l];
      }
      for (; i < k; ++i) s[0] += wf[i] * xt[i];
      a.y[t * a.rows + r] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
  }
}

}  // namespace

void rows_portable(const MatmulArgs& a, int64_t r0, int64_t r1) {
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
