#include "kernels/cuda/gemv_small.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/gemv_small_kernel.cuh"

namespace lw::cuda {

using small_detail::SMat;
using small_detail::SParams;

namespace small_detail {
LW_GEMV_SMALL_CONFIGS(LW_GEMV_SMALL_DECLARE)
}  // namespace small_detail

bool gemv_small_supported(GgmlType type, int64_t k, int n_tok) {
  const bool covered = type == GgmlType::Q4_K || type == GgmlType::Q6_K ||
                       type == GgmlType::Q8_0 || type == GgmlType::F16;
  return covered && n_tok >= 1 && n_tok <= kGemvSmallMaxTokens && gemv_supported(type, k);
}

bool gemv_small_enabled_by_env() {
  static const bool enabled = [] {
    const char* v = std::getenv("LW_CUDA_GEMV_SMALL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

int gemv_small_config_from_env() {
  static const int cfg = [] {
    const char* v = std::getenv("LW_CUDA_GEMV_SMALL_CFG");
    if (v == nullptr || *v == '\0') return kGemvSmallDefaultConfig;
    char* end = nullptr;
    const long parsed = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || parsed < 0 || parsed >= kGemvSmallConfigs) {
      throw Error(ErrorCode::kCliArgument,
                  std::string("environment variable LW_CUDA_GEMV_SMALL_CFG=\"") + v +
                      "\" is not a configuration index in [0, " +
                      std::to_string(kGemvSmallConfigs) + ")");
    }
    return static_cast<int>(parsed);
  }();
  return cfg;
}

void gemv_small(const GemvMatrix* mats, int n_mats, int64_t k, const float* x, int64_t ldx,
                int n_tok, const GemvSwiglu* swiglu, CudaStream stream, int cfg) {
  const GgmlType type = mats[0].type;
  LW_CHECK(n_mats >= 1 && n_mats <= kGemvMaxGroup && gemv_small_supported(type, k, n_tok),
           "gemv_small: type " + type_name(static_cast<uint32_t>(type)) + " k=" +
               std::to_string(k) + " n_tok=" + std::to_string(n_tok));
  const bool pair = swiglu != nullptr && swiglu->out != nullptr;
  LW_CHECK(!pair || (n_mats == 2 && mats[0].rows == mats[1].rows),
           "gemv_small: swiglu needs two matrices of equal rows");
  SParams p{};
  int64_t rb = 0;
  for (int i = 0; i < n_mats; ++i) {
    LW_CHECK(mats[i].type == type && mats[i].rows >= 1 && mats[i].w != nullptr &&
                 mats[i].y != nullptr,
             "gemv_small: matrix " + std::to_string(i));
    SMat& m = p.m[i];
    m.w = static_cast<const uint8_t*>(mats[i].w);
    m.rows = mats[i].rows;
    m.row_bytes = weight_bytes(type, 1, k);
    m.y = mats[i].y;
    m.ldy = mats[i].ldy;
    m.add_in = mats[i].add_in;
    m.add_out = mats[i].add_out;
    m.ld_add = mats[i].ld_add;
    p.row_begin[i] = rb;
    rb += m.rows;
  }
  for (int i = n_mats; i <= kGemvMaxGroup; ++i) p.row_begin[i] = rb;
  p.n_mat = n_mats;
  p.k = k;
  p.units = k / 32;
  p.x = x;
  p.ldx = ldx;
  p.swiglu_out = pair ? swiglu->out : nullptr;
  p.ld_swiglu = pair ? swiglu->ld_out : 0;
  if (cfg < 0) cfg = gemv_small_config_from_env();
  LW_CHECK(cfg < kGemvSmallConfigs, "gemv_small: configuration " + std::to_string(cfg));
  const cudaStream_t s = to_stream(stream);
  switch (cfg) {
#define LW_GEMV_SMALL_CASE(i, W, S, B, KS)                                                  \
  case i:                                                                                   \
    small_detail::gemv_small_launch<W, S, B, KS>(type, p, pair, mats[0].rows, rb, n_tok, s); \
    break;
    LW_GEMV_SMALL_CONFIGS(LW_GEMV_SMALL_CASE)
#undef LW_GEMV_SMALL_CASE
    default: break;
  }
}

}  // namespace lw::cuda
