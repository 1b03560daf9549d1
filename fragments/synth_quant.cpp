#include "fragments/synth_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/half.h"

namespace lw {
namespace {

// Round to nearest (ties to even) for |x| < 2^22, as ggml's nearest_int: adding 1.5 * 2^23
// leaves the integer in the low mantissa bits. Inputs here are bounded by 128.
inline int nearest(float x) {
  const float v = x + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, sizeof(i));
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace

void synth_quantize_q4_k(const float* x, BlockQ4_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K, ++y) {
    // Sub-block j holds x = scale[j] * q - offset[j], q in 0..15, from its min and max.
    float scale[8], offset[8];
    float max_scale = 0, max_offset = 0;
    for (int j = 0; j < 8; ++j) {
      const float* v = x + 32 * j;
      float lo = 0, hi = v[0];  // lo <= 0 as in ggml: the offset is never negative
      for (int i = 0; i < 32; ++i) {
        lo = std::min(lo, v[i]);
        hi = std::max(hi, v[i]);
      }
      scale[j] = (hi - lo) / 15.0f;
      offset[j] = -lo;
      max_scale = std::max(max_scale, scale[j]);
      max_offset = std::max(max_offset, offset[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_offset = max_offset > 0 ? 63.0f / max_offset : 0.0f;
    uint8_t ls[8], lm[8];
    std::memset(y->scales, 0, sizeof(y->scales));
    for (int j = 0; j < 8; ++j) {
      // The scale rounds up so the sub-block's max is not clipped.
      ls[j] = static_cast<uint8_t>(std::min(63, static_cast<int>(std::ceil(inv_scale * scale[j]))));
      lm[j] = static_cast<uint8_t>(std::min(63, nearest(inv_offset * offset[j])));
      if (j < 4) {
        y->scales[j] = ls[j];
        y->scales[j + 4] = lm[j];
      } else {
        y->scales[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
        y->scales[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
        y->scales[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
      }
    }
    y->d = fp32_to_fp16(max_scale / 63.0f);
    y->dmin = fp32_to_fp16(max_offset / 63.0f);
    const float d = fp16_to_fp32(y->d), dmin = fp16_to_fp32(y->dmin);
    uint8_t q[kQK_K];
    for (int j = 0; j < 8; ++j) {
      const float step = d * ls[j];
      const float off = dmin * lm[j];
      const float inv = step > 0 ? 1.0f / step : 0.0f;
      for (int i = 0; i < 32; ++i) {
        q[32 * j + i] =
            static_cast<uint8_t>(std::clamp(nearest((x[32 * j + i] + off) * inv), 0, 15));
      }
    }
    // Each 32 bytes of qs: sub-block 2k in the low nibbles, 2k + 1 in the high ones.
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        y->qs[32 * k + l] = static_cast<uint8_t>(q[64 * k + l] | (q[64 * k + 32 + l] << 4));
      }
    }
  }
}

void synth_quantize_q6_k(const float* x, BlockQ6_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K, ++y) {
    // Sub-block ib of 16 values: x = scale[ib] * q, q in -32..31; its largest |x| maps to -32.
    float scale[16];
    float max_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      float lo = 0, hi = 0;
      for (int i = 0; i < 16; ++i) {
        lo = std::min(lo, x[16 * ib + i]);
        hi = std::max(hi, x[16 * ib + i]);
      }
      const float peak = hi >= -lo ? hi : lo;  // the value of largest magnitude
      scale[ib] = -peak / 32.0f;
      if (std::fabs(scale[ib]) > std::fabs(max_scale)) max_scale = scale[ib];
    }
    uint8_t q[kQK_K];
    if (max_scale == 0) {
      std::memset(y, 0, sizeof(*y));
      std::memset(q, 32, sizeof(q));
    } else {
      const float iscale = -128.0f / max_scale;
      y->d = fp32_to_fp16(1.0f / iscale);
      for (int ib = 0; ib < 16; ++ib) {
        y->scales[ib] = static_cast<int8_t>(std::clamp(nearest(iscale * scale[ib]), -128, 127));
      }
      const float d = fp16_to_fp32(y->d);
      for (int ib = 0; ib < 16; ++ib) {
        const float step = d * y->scales[ib];
        const float inv = step != 0 ? 1.0f / step : 0.0f;
        for (int i = 0; i < 16; ++i) {
          const int l = std::clamp(nearest(x[16 * ib + i] * inv), -32, 31);
          q[16 * ib + i] = static_cast<uint8_t>(l + 32);
        }
      }
    }
    // Per 128 values: ql holds the low 4 bits (values l and l+64 share a byte, as do l+32
    // and l+96), qh the high 2 bits of l, l+32, l+64, l+96 in one byte.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* v = q + 128 * h;
      uint8_t* ql = y->ql + 64 * h;
      uint8_t* qh = y->qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) |
                                     ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace lw
