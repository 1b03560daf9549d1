#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/simd.h"

namespace lw {

namespace {

constexpr int64_t kHeadTile = 8;  // query heads of one KV head processed together

// Vector primitives of one ISA (function pointers chosen once per call).
struct AttnOps {
  void (*to_f32)(const uint16_t* src, float* dst, int64_t n);
  void (*to_f16)(const float* src, uint16_t* dst, int64_t n);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float* acc, float p, const float* x, int64_t n);  // acc += p * x
  void (*scale)(float* acc, float c, int64_t n);
};

void to_f32_portable(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}
void to_f16_portable(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}
float dot_portable(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}
void axpy_portable(float* acc, float p, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += p * x[i];
}
void scale_portable(float* acc, float c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] *= c;
}

#ifdef LW_CPU_X86
LW_AVX2 void to_f32_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, simd::load_f16x8(src + i));
  for (; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}
LW_AVX2 void to_f16_avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}
LW_AVX2 float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  }
  float sum = simd::hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}
LW_AVX2 void axpy_avx2(float* acc, float p, const float* x, int64_t n) {
  const __m256 vp = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(acc + i,
                     _mm256_fmadd_ps(vp, _mm256_loadu_ps(x + i), _mm256_loadu_ps(acc + i)));
  }
  for (; i < n; ++i) acc[i] += p * x[i];
}
LW_AVX2 void scale_avx2(float* acc, float c, int64_t n) {
  const __m256 vc = _mm256_set1_ps(c);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(acc + i, _mm256_mul_ps(vc, _mm256_loadu_ps(acc + i)));
  for (; i < n; ++i) acc[i] *= c;
}
#endif

AttnOps ops_for(CpuIsa isa) {
#ifdef LW_CPU_X86
  if (isa == CpuIsa::Avx2) return {to_f32_avx2, to_f16_avx2, dot_avx2, axpy_avx2, scale_avx2};
#endif
  (void)isa;
  return {to_f32_portable, to_f16_portable, dot_portable, axpy_portable, scale_portable};
}

inline const int32_t* token_table(const AttentionBatch& batch, int64_t t) {
  return batch.block_tables + batch.table_offsets[t];
}

// Attention of query heads [h0, h0 + n_h) (all on KV head kvh) of token t.
void attend_tile(const AttnOps& ops, const KvLayerView& kv, const AttentionBatch& batch, int64_t t,
                 int64_t kvh, const float* q_row, int64_t h0, int64_t n_h, float scale,
                 float* out_row) {
  const int64_t hd = kv.head_dim;
  const int64_t bs = kv.block_size;
  const int64_t n_ctx = static_cast<int64_t>(batch.positions[t]) + 1;
  const int32_t* table = token_table(batch, t);

  float acc[kHeadTile * kAttnMaxHeadDim];
  float scores[kHeadTile * kAttnMaxBlockSize];
  float row[kAttnMaxHeadDim];
  float m[kHeadTile], l[kHeadTile];
  for (int64_t g = 0; g < n_h; ++g) {
    m[g] = -std::numeric_limits<float>::infinity();
    l[g] = 0.0f;
    std::fill(acc + g * hd, acc + (g + 1) * hd, 0.0f);
  }
  const int64_t n_blocks = (n_ctx + bs - 1) / bs;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t block = table[b];
    const int64_t n_slots = std::min(bs, n_ctx - b * bs);
    const uint16_t* kb = kv.k + kv.offset(block, kvh, 0);
    const uint16_t* vb = kv.v + kv.offset(block, kvh, 0);
    for (int64_t s = 0; s < n_slots; ++s) {
      ops.to_f32(kb + s * hd, row, hd);
      for (int64_t g = 0; g < n_h; ++g) {
        scores[g * bs + s] = ops.dot(q_row + (h0 + g) * hd, row, hd) * scale;
      }
    }
    for (int64_t g = 0; g < n_h; ++g) {
      float* sc = scores + g * bs;
      float block_max = sc[0];
      for (int64_t s = 1; s < n_slots; ++s) block_max = std::max(block_max, sc[s]);
      const float m_new = std::max(m[g], block_max);
      const float corr = std::exp(m[g] - m_new);  // 0 on the first block (m = -inf)
      float sum = 0.0f;
      for (int64_t s = 0; s < n_slots; ++s) {
        sc[s] = std::exp(sc[s] - m_new);
        sum += sc[s];
      }
      l[g] = l[g] * corr + sum;
      m[g] = m_new;
      if (corr != 1.0f) ops.scale(acc + g * hd, corr, hd);
    }
    for (int64_t s = 0; s < n_slots; ++s) {
      ops.to_f32(vb + s * hd, row, hd);
      for (int64_t g = 0; g < n_h; ++g) ops.axpy(acc + g * hd, scores[g * bs + s], row, hd);
    }
  }
  for (int64_t g = 0; g < n_h; ++g) {
    float* dst = out_row + (h0 + g) * hd;
    const float inv = 1.0f / l[g];
    for (int64_t i = 0; i < hd; ++i) dst[i] = acc[g * hd + i] * inv;
  }
}

}  // namespace

void kv_write_ref(const KvLayerView& kv, const AttentionBatch& batch, const float* k,
                  const float* v) {
  const int64_t kv_dim = static_cast<int64_t>(kv.n_kv_heads) * kv.head_dim;
  for (int64_t t = 0; t < batch.n_tokens; ++t) {
    const int64_t pos = batch.positions[t];
    const int64_t block = token_table(batch, t)[pos / kv.block_size];
    for (int64_t h = 0; h < kv.n_kv_heads; ++h) {
      const int64_t dst = kv.offset(block, h, pos % kv.block_size);
      for (int64_t i = 0; i < kv.head_dim; ++i) {
        kv.k[dst + i] = fp32_to_fp16(k[t * kv_dim + h * kv.head_dim + i]);
        kv.v[dst + i] = fp32_to_fp16(v[t * kv_dim + h * kv.head_dim + i]);
      }
    }
  }
}

void kv_write(ThreadPool& pool, CpuIsa isa, const KvLayerView& kv, const AttentionBatch& batch,
              const float* k, const float* v) {
  const AttnOps ops = ops_for(isa);
  const int64_t kv_dim = static_cast<int64_t>(kv.n_kv_heads) * kv.head_dim;
  pool.parallel_for(batch.n_tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t pos = batch.positions[t];
      const int64_t block = token_table(batch, t)[pos / kv.block_size];
      for (int64_t h = 0; h < kv.n_kv_heads; ++h) {
        const int64_t dst = kv.offset(block, h, pos % kv.block_size);
        ops.to_f16(k + t * kv_dim + h * kv.head_dim, kv.k + dst, kv.head_dim);
        ops.to_f16(v + t * kv_dim + h * kv.head_dim, kv.v + dst, kv.head_dim);
      }
    }
  });
}

void attention_ref(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                   int64_t n_heads, float scale, float* out) {
  const int64_t hd = kv.head_dim;
  const int64_t group = n_heads / kv.n_kv_heads;
  std::vector<double> scores;
  std::vector<double> acc(hd);
  for (int64_t t = 0; t < batch.n_tokens; ++t) {
    const int64_t n_ctx = static_cast<int64_t>(batch.positions[t]) + 1;
    const int32_t* table = token_table(batch, t);
    scores.assign(n_ctx, 0.0);
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kvh = h / group;
      const float* qh = q + (t * n_heads + h) * hd;
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n_ctx; ++j) {
        const uint16_t* kj = kv.k + kv.offset(table[j / kv.block_size], kvh, j % kv.block_size);
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(qh[i]) * fp16_to_fp32(kj[i]);
        scores[j] = dot * scale;
        max_score = std::max(max_score, scores[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < n_ctx; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        sum += scores[j];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < n_ctx; ++j) {
        const uint16_t* vj = kv.v + kv.offset(table[j / kv.block_size], kvh, j % kv.block_size);
        for (int64_t i = 0; i < hd; ++i) acc[i] += scores[j] * fp16_to_fp32(vj[i]);
      }
      float* dst = out + (t * n_heads + h) * hd;
      for (int64_t i = 0; i < hd; ++i) dst[i] = static_cast<float>(acc[i] / sum);
    }
  }
}

void attention(ThreadPool& pool, CpuIsa isa, const KvLayerView& kv, const AttentionBatch& batch,
               const float* q, int64_t n_heads, float scale, float* out) {
  LW_CHECK(kv.head_dim <= kAttnMaxHeadDim && kv.block_size <= kAttnMaxBlockSize &&
               kv.n_kv_heads > 0 && n_heads % kv.n_kv_heads == 0,
           "attention: head_dim " + std::to_string(kv.head_dim) + ", block_size " +
               std::to_string(kv.block_size) + ", heads " + std::to_string(n_heads) + "/" +
               std::to_string(kv.n_kv_heads));
  const AttnOps ops = ops_for(isa);
  const int64_t group = n_heads / kv.n_kv_heads;
  const int64_t tiles = (group + kHeadTile - 1) / kHeadTile;
  const int64_t per_token = kv.n_kv_heads * tiles;
  const int64_t row = n_heads * kv.head_dim;
  pool.parallel_for(batch.n_tokens * per_token, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / per_token;
      const int64_t kvh = (item % per_token) / tiles;
      const int64_t tile = item % tiles;
      const int64_t h0 = kvh * group + tile * kHeadTile;
      const int64_t n_h = std::min(kHeadTile, (kvh + 1) * group - h0);
      attend_tile(ops, kv, batch, t, kvh, q + t * row, h0, n_h, scale, out + t * row);
    }
  });
}

}  // namespace lw
