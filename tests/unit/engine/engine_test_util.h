// Helpers for the engine tests: a synthesized model split into a fragment store inside a
// TempDir, and the comparisons the tests share.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fragments/store.h"
#include "fragments/synth.h"
#include "tests/support/test_support.h"

namespace lw::test {

// A store made by synth_model(preset, quant, layers) + store_split, removed at scope exit.
class SynthStore {
 public:
  SynthStore(const std::string& preset, const std::string& quant, int layers = -1,
             uint64_t seed = 1) {
    SynthOptions options;
    options.preset = preset;
    options.quant = quant;
    options.layers = layers;
    options.seed = seed;
    synth_model(options, dir_ / "model.gguf");
    store_split(dir_ / "model.gguf", dir_ / "store", SplitOptions{});
  }
  std::filesystem::path path() const { return dir_ / "store"; }
  std::filesystem::path gguf() const { return dir_ / "model.gguf"; }

 private:
  TempDir dir_;
};

// sqrt(sum (a - b)^2 / sum b^2); infinity on a size mismatch or a non-finite value.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i]))
      return std::numeric_limits<double>::infinity();
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

inline std::vector<float> random_hidden(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace lw::test
