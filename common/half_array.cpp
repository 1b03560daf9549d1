#include "common/half_array.h"

#include "common/half.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LW_HALF_X86 1
#endif

namespace lw {
namespace {

void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

bool overflows(float x) {
  const uint32_t abs = f32_to_bits(x) & 0x7fffffffu;
  return abs >= 0x477ff000u && abs < 0x7f800000u;  // finite and |x| >= 65520
}

#ifdef LW_HALF_X86
__attribute__((target("avx,f16c"))) bool narrow_f16c(const float* src, size_t n, uint8_t* dst) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 limit = _mm256_set1_ps(65520.0f);
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  __m256 bad = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(src + i);
    const __m256 a = _mm256_andnot_ps(sign_mask, x);
    bad = _mm256_or_ps(bad, _mm256_and_ps(_mm256_cmp_ps(a, limit, _CMP_GE_OQ),
                                          _mm256_cmp_ps(a, inf, _CMP_LT_OQ)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i),
                     _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  bool overflow = _mm256_movemask_ps(bad) != 0;
  for (; i < n; ++i) {
    store16(dst + 2 * i, fp32_to_fp16(src[i]));
    overflow |= overflows(src[i]);
  }
  return !overflow;
}

__attribute__((target("avx,f16c"))) void widen_f16c(const uint8_t* src, size_t n, float* dst) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  }
  for (; i < n; ++i) dst[i] = fp16_to_fp32(load16(src + 2 * i));
}

bool have_f16c() {
  static const bool yes = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return yes;
}
#else
bool have_f16c() { return false; }
#endif

}  // namespace

bool fp32_to_fp16_array_scalar(const float* src, size_t n, void* dst_bytes) {
  auto* dst = static_cast<uint8_t*>(dst_bytes);
  bool overflow = false;
  for (size_t i = 0; i < n; ++i) {
    store16(dst + 2 * i, fp32_to_fp16(src[i]));
    overflow |= overflows(src[i]);
  }
  return !overflow;
}

void fp16_to_fp32_array_scalar(const void* src_bytes, size_t n, float* dst) {
  const auto* src = static_cast<const uint8_t*>(src_bytes);
  for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load16(src + 2 * i));
}

bool fp32_to_fp16_array(const float* src, size_t n, void* dst) {
#ifdef LW_HALF_X86
  if (have_f16c()) return narrow_f16c(src, n, static_cast<uint8_t*>(dst));
#endif
  return fp32_to_fp16_array_scalar(src, n, dst);
}

void fp16_to_fp32_array(const void* src, size_t n, float* dst) {
#ifdef LW_HALF_X86
  if (have_f16c()) return widen_f16c(static_cast<const uint8_t*>(src), n, dst);
#endif
  fp16_to_fp32_array_scalar(src, n, dst);
}

const char* half_array_path() { return have_f16c() ? "f16c" : "scalar"; }

}  // namespace lw
