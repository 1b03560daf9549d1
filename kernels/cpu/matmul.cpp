#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/matmul_internal.h"

namespace lw {
namespace {

using matmul_detail::ActQ8_0;
using matmul_detail::ActQ8K;
using matmul_detail::MatmulArgs;

// Round to nearest for |v| <= 2^22 (as ggml's nearest_int).
inline int nearest_int(float fval) {
  const float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

// Checks type and shape; returns the bytes of one weight row.
size_t check_shape(const char* who, GgmlType type, int64_t rows, int64_t k, int64_t n_tok) {
  LW_CHECK(rows >= 0 && k >= 0 && n_tok >= 0, std::string(who) + ": rows=" + std::to_string(rows) +
                                                  " k=" + std::to_string(k) +
                                                  " n_tok=" + std::to_string(n_tok));
  const TypeTraits* t = type_traits(static_cast<uint32_t>(type));
  if (t == nullptr || !t->supported) {
    throw Error(ErrorCode::kGgufTensorType, std::string(who) + ": weight type " +
                                                type_name(static_cast<uint32_t>(type)) +
                                                " is not supported");
  }
  uint64_t bytes = 0;
  if (!row_size(type, static_cast<uint64_t>(k), &bytes)) {
    throw Error(ErrorCode::kQuantSize,
                std::string(who) + ": " + std::string(t->name) + " row of k=" + std::to_string(k) +
                    " values is not a multiple of the block size " + std::to_string(t->block_size));
  }
  return static_cast<size_t>(bytes);
}

void quantize_act_q8k(const float* x, ActQ8K* out) {
  float amax = 0, max = 0;
  for (int j = 0; j < kQK_K; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax == 0) {
    std::memset(out, 0, sizeof(*out));
    return;
  }
  const float iscale = -127.f / max;
  for (int j = 0; j < kQK_K; ++j) {
    out->qs[j] = static_cast<int8_t>(std::clamp(nearest_int(iscale * x[j]), -127, 127));
  }
  for (int g = 0; g < kQK_K / 16; ++g) {
    int s = 0;
    for (int l = 0; l < 16; ++l) s += out->qs[16 * g + l];
    out->bsums[g] = static_cast<int16_t>(s);
  }
  out->d = 1 / iscale;
}

void quantize_act_q8_0(const float* x, ActQ8_0* out) {
  float amax = 0;
  for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d ? 1.0f / d : 0.0f;
  out->d = d;
  for (int j = 0; j < kQK8_0; ++j) {
    out->qs[j] = static_cast<int8_t>(std::clamp(nearest_int(x[j] * id), -127, 127));
  }
}

void run(ThreadPool& pool, bool avx2, GgmlType type, const void* w, int64_t rows, int64_t k,
         const float* x, int64_t n_tok, float* y) {
  const size_t row_bytes = check_shape("matmul", type, rows, k, n_tok);
  if (rows == 0 || n_tok == 0) return;
  MatmulArgs a{type, static_cast<const uint8_t*>(w), row_bytes, rows, k, n_tok, x, nullptr, y};

  // Quantize each activation row once; every weight row is then dotted against it.
  std::vector<ActQ8K> q8k;
  std::vector<ActQ8_0> q8_0;
  if (type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K) {
    const int64_t nb = k / kQK_K;
    q8k.resize(static_cast<size_t>(nb * n_tok));
    pool.parallel_for(n_tok, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t b = 0; b < nb; ++b)
          quantize_act_q8k(x + t * k + b * kQK_K, &q8k[b * n_tok + t]);
      }
    });
    a.xq = q8k.data();
  } else if (type == GgmlType::Q8_0) {
    const int64_t nb = k / kQK8_0;
    q8_0.resize(static_cast<size_t>(nb * n_tok));
    pool.parallel_for(n_tok, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t b = 0; b < nb; ++b) {
          quantize_act_q8_0(x + t * k + b * kQK8_0, &q8_0[b * n_tok + t]);
        }
      }
    });
    a.xq = q8_0.data();
  }
  // Chunks of at least ~64 KiB of weights so scheduling cost stays small.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, row_bytes));
  pool.parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    if (avx2) {
      matmul_detail::rows_avx2(a, r0, r1);
    } else {
      matmul_detail::rows_portable(a, r0, r1);
    }
  });
}

}  // namespace

void matmul_ref(GgmlType type, const void* w, int64_t rows, int64_t k, const float* x,
                int64_t n_tok, float* y) {
  const size_t row_bytes = check_shape("matmul_ref", type, rows, k, n_tok);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, static_cast<const uint8_t*>(w) + r * row_bytes, row.data(), k);
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = 0;
      for (int64_t i = 0; i < k; ++i) s += static_cast<double>(row[i]) * x[t * k + i];
      y[t * rows + r] = static_cast<float>(s);
    }
  }
}

bool matmul_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

void matmul(ThreadPool& pool, GgmlType type, const void* w, int64_t rows, int64_t k, const float* x,
            int64_t n_tok, float* y) {
  run(pool, matmul_has_avx2(), type, w, rows, k, x, n_tok, y);
}

void matmul_portable(ThreadPool& pool, GgmlType type, const void* w, int64_t rows, int64_t k,
                     const float* x, int64_t n_tok, float* y) {
  run(pool, false, type, w, rows, k, x, n_tok, y);
}

}  // namespace lw
