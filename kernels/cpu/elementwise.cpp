#include "kernels/cpu/elementwise.h"

#include <cmath>
#include <string>

#include "common/error.h"

namespace lw {

namespace {
constexpr int64_t kElementGrain = 16384;  // smallest chunk worth a thread hand-off

inline float silu_mul(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

const uint8_t* table_row(GgmlType type, const void* table, int64_t rows, int64_t cols,
                         int32_t token) {
  LW_CHECK(token >= 0 && token < rows,
           "embed: token " + std::to_string(token) + " outside [0, " + std::to_string(rows) + ")");
  uint64_t row_bytes = 0;
  LW_CHECK(row_size(type, static_cast<uint64_t>(cols), &row_bytes),
           "embed: bad row of " + std::to_string(cols) + " values");
  return static_cast<const uint8_t*>(table) + static_cast<uint64_t>(token) * row_bytes;
}
}  // namespace

void add_ref(const float* a, const float* b, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void add(ThreadPool& pool, const float* a, const float* b, int64_t n, float* y) {
  pool.parallel_for(n, kElementGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = a[i] + b[i];
  });
}

void swiglu_ref(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void swiglu(ThreadPool& pool, const float* gate, const float* up, int64_t n, float* out) {
  pool.parallel_for(n, kElementGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = silu_mul(gate[i], up[i]);
  });
}

void embed_rows_ref(GgmlType type, const void* table, int64_t rows, int64_t cols,
                    const int32_t* tokens, int64_t n_tok, float* out) {
  for (int64_t t = 0; t < n_tok; ++t) {
    dequantize_row(type, table_row(type, table, rows, cols, tokens[t]), out + t * cols, cols);
  }
}

void embed_rows(ThreadPool& pool, GgmlType type, const void* table, int64_t rows, int64_t cols,
                const int32_t* tokens, int64_t n_tok, float* out) {
  pool.parallel_for(n_tok, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      dequantize_row(type, table_row(type, table, rows, cols, tokens[t]), out + t * cols, cols);
    }
  });
}

}  // namespace lw
