#include "kernels/cpu/rope.h"

#include <cmath>
#include <vector>

namespace lw {

namespace {

// Index of the two values of pair i within a head.
inline void pair_index(RopeMode mode, int64_t head_dim, int64_t i, int64_t* a, int64_t* b) {
  if (mode == RopeMode::AdjacentPair) {
    *a = 2 * i;
    *b = 2 * i + 1;
  } else {
    *a = i;
    *b = i + head_dim / 2;
  }
}

inline double rope_angle(int32_t pos, float theta, int64_t i, int64_t head_dim) {
  const double inv_freq =
      std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / head_dim);
  return static_cast<double>(pos) * inv_freq;
}

}  // namespace

void rope_ref(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
              const int32_t* positions, float theta, RopeMode mode) {
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t h = 0; h < n_heads; ++h) {
      float* head = x + t * row_stride + h * head_dim;
      for (int64_t i = 0; i < head_dim / 2; ++i) {
        const double angle = rope_angle(positions[t], theta, i, head_dim);
        const double c = std::cos(angle), s = std::sin(angle);
        int64_t ia, ib;
        pair_index(mode, head_dim, i, &ia, &ib);
        const double a = head[ia], b = head[ib];
        head[ia] = static_cast<float>(a * c - b * s);
        head[ib] = static_cast<float>(a * s + b * c);
      }
    }
  }
}

void rope(ThreadPool& pool, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads,
          int64_t head_dim, const int32_t* positions, float theta, RopeMode mode) {
  const int64_t half = head_dim / 2;
  pool.parallel_for(n_tok, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> cs(2 * half);
    float* cos_t = cs.data();
    float* sin_t = cs.data() + half;
    for (int64_t t = begin; t < end; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        const double angle = rope_angle(positions[t], theta, i, head_dim);
        cos_t[i] = static_cast<float>(std::cos(angle));
        sin_t[i] = static_cast<float>(std::sin(angle));
      }
      float* row = x + t * row_stride;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* head = row + h * head_dim;
        if (mode == RopeMode::AdjacentPair) {
          for (int64_t i = 0; i < half; ++i) {
            const float a = head[2 * i], b = head[2 * i + 1];
            head[2 * i] = a * cos_t[i] - b * sin_t[i];
            head[2 * i + 1] = a * sin_t[i] + b * cos_t[i];
          }
        } else {
          for (int64_t i = 0; i < half; ++i) {
            const float a = head[i], b = head[i + half];
            head[i] = a * cos_t[i] - b * sin_t[i];
            head[i + half] = a * sin_t[i] + b * cos_t[i];
          }
        }
      }
    }
  });
}

}  // namespace lw
