// Helpers for the CUDA tests: the visible skip when no GPU is present, host <-> device
// copies through a Backend, NaN poisoning, seeded data, quantized random weights, the
// normalized error every comparison uses, and the CPU reference backend (CpuBackend with the
// scalar references matmul_ref / attention_ref: exact dequantization, double accumulation),
// which is what the CUDA ops are held against.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fragments/quant.h"
#include "kernels/backend.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_device.h"

namespace lw::test {

// Skips the test (visibly, with the runtime's reason) when no CUDA device is usable.
#define LW_REQUIRE_GPU()                                                          \
  do {                                                                            \
    std::string lw_why_;                                                          \
    if (!::lw::cuda::device_available(&lw_why_))                                  \
      GTEST_SKIP() << "no CUDA device: " << lw_why_;                              \
  } while (0)

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// sqrt(sum (a - b)^2 / sum b^2); infinity when sizes differ or any value is not finite (an
// unwritten, NaN-poisoned output therefore always fails).
inline double norm_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      return std::numeric_limits<double>::infinity();
    }
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// rows x k gaussian weights encoded with the reference quantizer (GGUF bytes).
inline std::vector<uint8_t> random_weights(GgmlType type, int64_t rows, int64_t k,
                                           uint32_t seed) {
  uint64_t rb = 0;
  EXPECT_TRUE(row_size(type, static_cast<uint64_t>(k), &rb));
  std::vector<uint8_t> bytes(rb * static_cast<uint64_t>(rows));
  std::vector<float> row = randn(static_cast<size_t>(k), seed);
  std::mt19937 rng(seed ^ 0x9e3779b9u);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng);
    quantize_row(type, row.data(), bytes.data() + r * rb, k);
  }
  return bytes;
}

inline std::vector<GgmlType> all_weight_types() {
  return {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_0,
          GgmlType::F16,  GgmlType::BF16, GgmlType::F32};
}

inline std::string type_str(GgmlType t) { return type_name(static_cast<uint32_t>(t)); }

// A device buffer of a backend filled from / read back to host vectors.
template <typename T>
DeviceBuffer to_device(Backend& b, const std::vector<T>& v) {
  DeviceBuffer buf = b.alloc(v.size() * sizeof(T));
  b.upload(buf, 0, v.data(), v.size() * sizeof(T));
  return buf;
}
template <typename T>
std::vector<T> from_device(Backend& b, const DeviceBuffer& buf, size_t n) {
  std::vector<T> v(n);
  b.download(buf, 0, v.data(), n * sizeof(T));
  return v;
}
// n floats of NaN on the device (outputs are poisoned before every run).
inline DeviceBuffer poisoned(Backend& b, size_t n) {
  return to_device(b, std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}

// The CPU reference backend: CpuBackend whose matmul and attention are the scalar
// references (exact dequantization, double accumulation), not the fast kernels that round
// activations to 8 bits.
class RefBackend : public CpuBackend {
 public:
  RefBackend() : CpuBackend(1) {}
  std::string name() const override { return "cpu-ref"; }
  void matmul(const Weight& w, const float* x, int64_t n_tok, float* y) override {
    matmul_ref(w.type, w.data, w.rows, w.cols, x, n_tok, y);
  }
  void attention(const KvLayerView& kv, const AttentionBatch& batch, const float* q,
                 int64_t n_heads, float scale, float* out) override {
    attention_ref(kv, batch, q, n_heads, scale, out);
  }
};

inline std::unique_ptr<Backend> cuda_backend(bool fuse = true, bool graphs = true) {
  CudaBackendOptions o;
  o.fuse = fuse;
  o.graphs = graphs;
  return make_cuda_backend(o);
}

}  // namespace lw::test
