// Internal to kernels/cpu: the attribute that compiles one function for AVX2/FMA/F16C (the
// rest of the file stays portable, so the binary runs on any x86-64), and small vector
// helpers used by several op families. Functions marked LW_AVX2 may only be called when
// cpu_detect_isa() returned CpuIsa::Avx2.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#define LW_CPU_X86 1
#include <immintrin.h>
#define LW_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace lw::simd {

// Sum of the 8 lanes.
LW_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  sums = _mm_add_ss(sums, shuf);
  return _mm_cvtss_f32(sums);
}

// 8 f16 values (IEEE half bits) to f32.
LW_AVX2 inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

}  // namespace lw::simd
#endif
