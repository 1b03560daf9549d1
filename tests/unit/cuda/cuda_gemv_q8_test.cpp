// The int8 decode GEMV (kernels/cuda/gemv_q8.h) against the exact reference (matmul_ref:
// exact dequantization, double accumulation):
//   - quantize_act_q8: every value within the stated bound of its two-plane form
//     (|x - dl (254 hi + lo)| <= dl / 2, dl = amax / 32258 per 32 values), planes in
//     [-127, 127], the 16-value sums equal to those of the represented values; zero blocks,
//     huge and tiny values,
//     a row that is not a multiple of 256 and a row stride that is not k;
//   - quantize_act_q8_sb (the tensor-core kernel's format, one dl per 256 values): the same
//     bound per super-block, zero / huge / tiny super-blocks;
//   - gemv_q8 vs matmul_ref: normalized error <= 1e-4 (~15-bit activations, exact weights,
//     f32 sums) for every covered type on the dp4a kernel (1..8 tokens, both rows-per-warp
//     shapes) and for Q4_K / Q6_K on the tensor-core kernel (1..32 tokens: partial 4-token
//     tiles, 1 to 8 tiles), a grid of a few persistent blocks and one of a block per row
//     group(s), activations staged in shared
//     memory and pre-quantized in the workspace, groups of matrices, the residual-add and
//     SwiGLU epilogues (the SwiGLU product 2e-4: two products' errors), strided outputs,
//     NaN-poisoned outputs;
//   - the RMSNorm fused in front equals rms_norm followed by the product;
//   - a Q4_K + Q6_K group in one launch equals each part's reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/gemv_q8.h"
#include "kernels/cuda/weight_layout.h"
#include "tests/unit/cuda/cuda_test_util.h"

namespace lw {
namespace {

using test::norm_err;
using test::randn;

cuda::GpuBuffer upload_bytes(const void* p, size_t n) {
  cuda::GpuBuffer b(n);
  cuda::copy_to_device(b.get(), p, n);
  return b;
}
std::vector<float> download(const cuda::GpuBuffer& b, size_t n) {
  std::vector<float> v(n);
  cuda::copy_to_host(v.data(), b.get(), n * sizeof(float));
  return v;
}
cuda::GpuBuffer poisoned_floats(size_t n) {
  cuda::GpuBuffer b(n * sizeof(float));
  cuda::dev_fill_bytes(b.get(), 0xFF, n * sizeof(float));  // NaN
  return b;
}

constexpr double kBound = 1e-4;

const GgmlType kCovered[] = {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_0};

// x with the cases the quantizers must agree on: an all-zero block, a block whose largest
// magnitudes are a tie of -a (first) and +a, a block of huge and one of tiny values.
std::vector<float> tricky_x(int n_tok, int64_t k, uint32_t seed) {
  std::vector<float> x = randn(static_cast<size_t>(n_tok) * k, seed, 2.0f);
  for (int t = 0; t < n_tok; ++t) {
    float* row = x.data() + t * k;
    if (k >= 256) std::memset(row, 0, 256 * sizeof(float));  // block 0 (and Q8_0 0..7): zero
    if (k >= 512) {
      row[256 + 7] = -9.5f;
      row[256 + 200] = 9.5f;  // tie: the CPU keeps the first (negative) one
    }
    if (k >= 1024) {
      for (int j = 512; j < 768; ++j) row[j] *= 1e6f;
      for (int j = 768; j < 1024; ++j) row[j] *= 1e-7f;
    }
  }
  return x;
}

// n_tok rows of tricky_x at row stride ldx = k + 12 (not k), quantized on the GPU by
// `quantize` into a 0xA5-filled buffer of n_tok * stride bytes; returns (x, the bytes).
template <typename Quantize>
std::pair<std::vector<float>, std::vector<uint8_t>> quantized_rows(int n_tok, int64_t k,
                                                                   int64_t stride, uint32_t seed,
                                                                   Quantize quantize) {
  const int64_t ldx = k + 12;
  std::vector<float> x(static_cast<size_t>(n_tok) * ldx, 0.f);
  const std::vector<float> xs = tricky_x(n_tok, k, seed);
  for (int t = 0; t < n_tok; ++t) std::memcpy(&x[t * ldx], &xs[t * k], k * sizeof(float));
  cuda::GpuBuffer xb = upload_bytes(x.data(), x.size() * sizeof(float));
  cuda::GpuBuffer qb(static_cast<size_t>(n_tok * stride));
  cuda::dev_fill_bytes(qb.get(), 0xA5, qb.size());
  quantize(xb.as<float>(), ldx, qb.get());
  cuda::device_synchronize("quantize");
  std::vector<uint8_t> got(qb.size());
  cuda::copy_to_host(got.data(), qb.get(), got.size());
  return {std::move(x), std::move(got)};
}

// One block of `len` values from column c0 of token t's row: dl == amax / 32258, and every
// value within dl / 2 of dl (254 hi + lo) with both planes in [-127, 127]. Reports up to
// 5 - bad failures and returns how many it reported.
int check_block(const float* row, const int8_t* hi, const int8_t* lo, float dl, int64_t c0, int len,
                int t, int bad) {
  int found = 0;
  float amax = 0.f;
  for (int j = 0; j < len; ++j) amax = std::max(amax, std::fabs(row[c0 + j]));
  if (!(std::fabs(dl - amax / 32258.0f) <= 1e-6f * amax / 32258.0f)) {
    ADD_FAILURE() << "token " << t << " block at " << c0 << ": dl " << dl << ", want "
                  << amax / 32258.0f;
    ++found;
  }
  for (int j = 0; j < len && bad + found < 5; ++j) {
    const int64_t c = c0 + j;
    const double back = static_cast<double>(dl) * (254.0 * hi[c] + lo[c]);
    const double bound = 0.5001 * dl + 1e-6 * std::fabs(row[c]);
    if (hi[c] < -127 || lo[c] < -127 || !(std::fabs(back - row[c]) <= bound)) {
      ADD_FAILURE() << "token " << t << " col " << c << ": x " << row[c] << ", planes "
                    << int(hi[c]) << "/" << int(lo[c]) << " give " << back;
      ++found;
    }
  }
  return found;
}

TEST(CudaQuantAct, TwoPlanesWithinTheirBound) {
  LW_REQUIRE_GPU();
  cuda::set_device(0);
  for (int64_t k : {32, 352, 1024, 4352}) {
    SCOPED_TRACE("k=" + std::to_string(k));
    const int n_tok = 3;
    const int64_t ldx = k + 12, stride = cuda::gemv_q8_act_stride(k);
    ASSERT_EQ(stride % 16, 0);
    ASSERT_GE(stride, 2 * k + k / 8 + k / 4);
    const auto [x, got] = quantized_rows(n_tok, k, stride, 7 + static_cast<uint32_t>(k),
                                         [&](const float* xd, int64_t ld, void* out) {
                                           cuda::quantize_act_q8(xd, ld, k, n_tok, out, nullptr);
                                         });
    int bad = 0;
    for (int t = 0; t < n_tok && bad < 5; ++t) {
      const uint8_t* tok = got.data() + t * stride;
      const auto* hi = reinterpret_cast<const int8_t*>(tok);
      const auto* lo = reinterpret_cast<const int8_t*>(tok + k);
      const auto* dl = reinterpret_cast<const float*>(tok + 2 * k);
      const auto* xsum = reinterpret_cast<const float*>(tok + 2 * k + k / 8);
      const float* row = &x[t * ldx];
      for (int64_t b = 0; b < k / 32 && bad < 5; ++b) {
        bad += check_block(row, hi, lo, dl[b], 32 * b, 32, t, bad);
      }
      for (int64_t g = 0; g < k / 16 && bad < 5; ++g) {
        // The sum of the represented values, dl * sum(254 hi + lo) (one f32 rounding).
        int64_t isum = 0;
        for (int j = 0; j < 16; ++j) isum += 254 * hi[16 * g + j] + lo[16 * g + j];
        const double want = static_cast<double>(dl[g / 2]) * static_cast<double>(isum);
        const double mag = static_cast<double>(dl[g / 2]) * 16 * 32385;
        if (!(std::fabs(xsum[g] - want) <= 1.2e-7 * std::fabs(want) + 1e-12 * mag)) {
          ADD_FAILURE() << "token " << t << " sum " << g << ": " << xsum[g] << ", want " << want;
          ++bad;
        }
      }
    }
  }
}

using Kernel = cuda::GemvQ8Kernel;

bool has_mma(GgmlType type) { return type == GgmlType::Q4_K || type == GgmlType::Q6_K; }

const char* kernel_str(Kernel k) {
  return k == Kernel::kMma ? "mma" : k == Kernel::kDp4a ? "dp4a" : "auto";
}

// The tensor-core kernel's format: one dl per 256 values (amax / 32258), every value within
// dl / 2 of its two planes, planes in [-127, 127]; a zero super-block gives dl 0 and zero
// planes; huge and tiny super-blocks get their own scale.
TEST(CudaQuantAct, SuperBlockPlanesWithinTheirBound) {
  LW_REQUIRE_GPU();
  cuda::set_device(0);
  for (int64_t k : {256, 1280, 4352}) {
    SCOPED_TRACE("k=" + std::to_string(k));
    const int n_tok = 3;
    const int64_t ldx = k + 12, stride = cuda::gemv_q8_sb_stride(k);
    ASSERT_EQ(stride % 16, 0);
    ASSERT_GE(stride, 2 * k + k / 64);
    const auto [x, got] = quantized_rows(n_tok, k, stride, 11 + static_cast<uint32_t>(k),
                                         [&](const float* xd, int64_t ld, void* out) {
                                           cuda::quantize_act_q8_sb(xd, ld, k, n_tok, out, nullptr);
                                         });
    int bad = 0;
    for (int t = 0; t < n_tok && bad < 5; ++t) {
      const uint8_t* tok = got.data() + t * stride;
      const auto* hi = reinterpret_cast<const int8_t*>(tok);
      const auto* lo = reinterpret_cast<const int8_t*>(tok + k);
      const auto* dl = reinterpret_cast<const float*>(tok + 2 * k);
      const float* row = &x[t * ldx];
      for (int64_t b = 0; b < k / 256 && bad < 5; ++b) {
        bad += check_block(row, hi, lo, dl[4 * b], 256 * b, 256, t, bad);
      }
    }
  }
}

struct Case {
  GgmlType type;
  Kernel kernel;
  int64_t k;
  int n_tok;
  int rows_per_warp;  // dp4a only
  int sm_count;       // 1 -> a few persistent blocks, each warp many row groups; huge -> one each
};

std::string case_str(const Case& c) {
  return test::type_str(c.type) + " " + kernel_str(c.kernel) + " k=" + std::to_string(c.k) +
         " n_tok=" + std::to_string(c.n_tok) + " R=" + std::to_string(c.rows_per_warp) +
         " sms=" + std::to_string(c.sm_count);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (GgmlType type : kCovered) {
    const bool q80 = type == GgmlType::Q8_0;
    for (int64_t k :
         q80 ? std::vector<int64_t>{96, 1056, 8192} : std::vector<int64_t>{256, 1280, 8192}) {
      for (int sms : {1, 100000}) {
        for (int n_tok : {1, 2, 3, 5, 8}) {
          for (int R : {2, 4}) out.push_back({type, Kernel::kDp4a, k, n_tok, R, sms});
        }
      }
      if (!has_mma(type)) continue;
      // sms 0: one block per tile (no K split), 1: two splits, huge: min(16, k / 256).
      for (int sms : {0, 1, 100000}) {
        for (int n_tok : {1, 2, 3, 5, 8, 13, 20, 32}) {
          out.push_back({type, Kernel::kMma, k, n_tok, 0, sms});
        }
      }
    }
  }
  return out;
}

// One group of three matrices (odd row counts) with strided outputs and an in-place residual
// add on the second; then a SwiGLU pair; against matmul_ref.
TEST(CudaGemvQ8, GroupsAndEpiloguesMatchReference) {
  LW_REQUIRE_GPU();
  cuda::set_device(0);
  uint32_t seed = 500;
  int checked_ws = 0, checked_smem = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_str(c));
    const int64_t k = c.k;
    const int n = c.n_tok;
    const int64_t rows[3] = {37, 64, 5};
    std::vector<std::vector<uint8_t>> w;
    for (int64_t r : rows) w.push_back(test::random_weights(c.type, r, k, seed++));
    const std::vector<float> x = randn(static_cast<size_t>(n) * k, seed++, 1.5f);
    const std::vector<float> resid = randn(static_cast<size_t>(n) * rows[1], seed++);

    std::vector<cuda::GpuBuffer> wb;
    for (int i = 0; i < 3; ++i) {
      std::vector<uint8_t> packed(w[i].size());
      cuda::repack_weights(c.type, w[i].data(), rows[i], k, packed.data());
      wb.push_back(upload_bytes(packed.data(), packed.size()));
    }
    cuda::GpuBuffer xb = upload_bytes(x.data(), x.size() * sizeof(float));
    const int64_t ldy0 = rows[0] + 3;
    cuda::GpuBuffer y0 = poisoned_floats(n * ldy0), y1 = poisoned_floats(n * rows[1]),
                    y2 = poisoned_floats(n * rows[2]);
    cuda::GpuBuffer rb = upload_bytes(resid.data(), resid.size() * sizeof(float));
    cuda::GemvMatrix m[3];
    float* ys[3] = {y0.as<float>(), y1.as<float>(), y2.as<float>()};
    const int64_t ldys[3] = {ldy0, rows[1], rows[2]};
    for (int i = 0; i < 3; ++i) {
      m[i].type = c.type;
      m[i].w = wb[i].get();
      m[i].rows = rows[i];
      m[i].y = ys[i];
      m[i].ldy = ldys[i];
    }
    m[1].add_in = rb.as<float>();
    m[1].add_out = rb.as<float>();  // in place
    m[1].ld_add = rows[1];
    const size_t ws_bytes = cuda::gemv_q8_workspace_bytes(m, 3, k, n, c.sm_count, c.kernel);
    (ws_bytes == 0 ? checked_smem : checked_ws)++;
    cuda::GpuBuffer ws(ws_bytes == 0 ? 16 : ws_bytes);
    cuda::GemvQ8Options opt;
    opt.kernel = c.kernel;
    opt.rows_per_warp = c.rows_per_warp;
    cuda::gemv_q8(m, 3, k, xb.as<float>(), k, n, nullptr, ws.get(), ws.size(), c.sm_count, nullptr,
                  opt);
    cuda::device_synchronize("gemv_q8");

    for (int i = 0; i < 3; ++i) {
      std::vector<float> ref(static_cast<size_t>(n * rows[i]));
      matmul_ref(c.type, w[i].data(), rows[i], k, x.data(), n, ref.data());
      const std::vector<float> all = download(i == 0 ? y0 : (i == 1 ? y1 : y2), n * ldys[i]);
      std::vector<float> got;
      for (int t = 0; t < n; ++t) {
        got.insert(got.end(), all.begin() + t * ldys[i], all.begin() + t * ldys[i] + rows[i]);
      }
      EXPECT_LE(norm_err(got, ref), kBound) << "matrix " << i;
      if (i == 1) {
        std::vector<float> want_add(ref.size());
        for (size_t j = 0; j < ref.size(); ++j) want_add[j] = resid[j] + ref[j];
        EXPECT_LE(norm_err(download(rb, ref.size()), want_add), kBound) << "residual add";
      }
    }

    // SwiGLU pair (rows 37): out = silu(W0 x) * W1 x, both y written too.
    cuda::GemvMatrix pr[2] = {m[0], m[0]};
    std::vector<uint8_t> w_up = test::random_weights(c.type, rows[0], k, seed++);
    std::vector<uint8_t> packed(w_up.size());
    cuda::repack_weights(c.type, w_up.data(), rows[0], k, packed.data());
    cuda::GpuBuffer wub = upload_bytes(packed.data(), packed.size());
    cuda::GpuBuffer yg = poisoned_floats(n * rows[0]), yu = poisoned_floats(n * rows[0]),
                    so = poisoned_floats(n * rows[0]);
    pr[0].y = yg.as<float>();
    pr[0].ldy = rows[0];
    pr[1].w = wub.get();
    pr[1].y = yu.as<float>();
    pr[1].ldy = rows[0];
    const cuda::GemvSwiglu sw{so.as<float>(), rows[0]};
    cuda::gemv_q8(pr, 2, k, xb.as<float>(), k, n, &sw, ws.get(), ws.size(), c.sm_count, nullptr,
                  opt);
    cuda::device_synchronize("gemv_q8 swiglu");
    std::vector<float> g(static_cast<size_t>(n * rows[0])), u(g.size()), want(g.size());
    matmul_ref(c.type, w[0].data(), rows[0], k, x.data(), n, g.data());
    matmul_ref(c.type, w_up.data(), rows[0], k, x.data(), n, u.data());
    for (size_t j = 0; j < g.size(); ++j) want[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
    EXPECT_LE(norm_err(download(yg, g.size()), g), kBound) << "gate";
    EXPECT_LE(norm_err(download(yu, u.size()), u), kBound) << "up";
    // silu(g) * u carries both products' errors (and silu's slope): twice the bound.
    EXPECT_LE(norm_err(download(so, want.size()), want), 2 * kBound) << "swiglu";
  }
  EXPECT_GT(checked_ws, 0) << "no case pre-quantized into the workspace";
  EXPECT_GT(checked_smem, 0) << "no case staged activations in shared memory";
}

// RMSNorm fused in front: the kernel's normalized output equals the CPU norm, and the product
// equals the exact norm-then-matmul reference.
TEST(CudaGemvQ8, FusedRmsNormMatchesNormThenMatmul) {
  LW_REQUIRE_GPU();
  cuda::set_device(0);
  ThreadPool pool(1);
  uint32_t seed = 900;
  for (GgmlType type : kCovered) {
    for (Kernel kernel : {Kernel::kDp4a, Kernel::kAuto, Kernel::kMma}) {
      if (kernel == Kernel::kMma && !has_mma(type)) continue;
      for (int n : {1, 3, 4, 13}) {
        if (n > cuda::kGemvQ8MaxTokens && kernel != Kernel::kMma) continue;
        const int64_t k = 1024, rows = 77;
        SCOPED_TRACE(test::type_str(type) + " " + kernel_str(kernel) +
                     " n_tok=" + std::to_string(n));
        ASSERT_TRUE(cuda::gemv_q8_can_fuse_norm(type, k, n, kernel));
        const std::vector<uint8_t> w = test::random_weights(type, rows, k, seed++);
        const std::vector<float> x = randn(static_cast<size_t>(n) * k, seed++, 3.0f);
        std::vector<float> nw = randn(static_cast<size_t>(k), seed++, 0.5f);
        for (float& v : nw) v += 1.0f;
        const float eps = 1e-5f;
        std::vector<float> normed(x.size()), normed_ref(x.size()),
            ref(static_cast<size_t>(n * rows));
        rms_norm(pool, cpu_detect_isa(), x.data(), nw.data(), n, k, eps, normed.data());
        rms_norm_ref(x.data(), nw.data(), n, k, eps, normed_ref.data());
        matmul_ref(type, w.data(), rows, k, normed_ref.data(), n, ref.data());

        std::vector<uint8_t> packed(w.size());
        cuda::repack_weights(type, w.data(), rows, k, packed.data());
        cuda::GpuBuffer wb = upload_bytes(packed.data(), packed.size());
        cuda::GpuBuffer xb = upload_bytes(x.data(), x.size() * sizeof(float));
        cuda::GpuBuffer nwb = upload_bytes(nw.data(), nw.size() * sizeof(float));
        cuda::GpuBuffer yb = poisoned_floats(ref.size()), ob = poisoned_floats(x.size());
        cuda::GemvMatrix m;
        m.type = type;
        m.w = wb.get();
        m.rows = rows;
        m.y = yb.as<float>();
        m.ldy = rows;
        cuda::GemvQ8Norm norm{nwb.as<float>(), eps, ob.as<float>()};
        cuda::GemvQ8Options opt;
        opt.kernel = kernel;
        opt.norm = &norm;
        const size_t ws_bytes = cuda::gemv_q8_workspace_bytes(&m, 1, k, n, 132, kernel);
        cuda::GpuBuffer ws(ws_bytes == 0 ? 16 : ws_bytes);
        cuda::gemv_q8(&m, 1, k, xb.as<float>(), k, n, nullptr, ws.get(), ws.size(), 132, nullptr,
                      opt);
        cuda::device_synchronize("gemv_q8 norm");
        EXPECT_LE(norm_err(download(ob, x.size()), normed), 1e-6) << "normalized output";
        EXPECT_LE(norm_err(download(yb, ref.size()), ref), kBound) << "vs exact norm + matmul";
      }
    }
  }
  EXPECT_FALSE(cuda::gemv_q8_can_fuse_norm(GgmlType::Q4_K, 14336, 8)) << "needs the workspace";
  EXPECT_TRUE(cuda::gemv_q8_can_fuse_norm(GgmlType::Q4_K, 14336, 32)) << "tensor cores";
}

// Q4_K matrices followed by Q6_K ones in one launch (the Q/K/V projections of a Q4_K_M layer):
// each part against matmul_ref, with persistent and one-group-per-warp grids, staged and
// workspace activations, and the RMSNorm fused in front where it can be (staged dp4a
// activations; always on tensor cores).
TEST(CudaGemvQ8, MixedTypeGroupMatchesReference) {
  LW_REQUIRE_GPU();
  cuda::set_device(0);
  ThreadPool pool(1);
  uint32_t seed = 1300;
  const GgmlType types[3] = {GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K};
  const int64_t rows[3] = {45, 16, 21};
  int checked_norm = 0;
  for (int64_t k : {256, 4096, 8192}) {
    for (int n : {1, 2, 3, 8, 13, 32}) {
      for (int R : {0, 2, 4}) {  // 0: the tensor-core kernel
        const Kernel kernel = R == 0 ? Kernel::kMma : Kernel::kDp4a;
        if (kernel == Kernel::kDp4a && n > cuda::kGemvQ8MaxTokens) continue;
        for (int sms : {1, 100000}) {
          const bool with_norm =
              cuda::gemv_q8_can_fuse_norm(GgmlType::Q4_K, k, n, kernel) && sms == 1;
          SCOPED_TRACE("k=" + std::to_string(k) + " n_tok=" + std::to_string(n) + " " +
                       kernel_str(kernel) + " R=" + std::to_string(R) +
                       " sms=" + std::to_string(sms) + (with_norm ? " norm" : ""));
          ASSERT_TRUE(cuda::gemv_q8_pair_supported(GgmlType::Q4_K, GgmlType::Q6_K, k, n, kernel));
          const std::vector<float> x = randn(static_cast<size_t>(n) * k, seed++, 1.5f);
          std::vector<float> nw = randn(static_cast<size_t>(k), seed++, 0.3f);
          for (float& v : nw) v += 1.0f;
          std::vector<float> xin = x;
          if (with_norm) rms_norm_ref(x.data(), nw.data(), n, k, 1e-5f, xin.data());
          cuda::GpuBuffer xb = upload_bytes(x.data(), x.size() * sizeof(float));
          cuda::GpuBuffer nwb = upload_bytes(nw.data(), nw.size() * sizeof(float));
          cuda::GpuBuffer nob = poisoned_floats(x.size());
          std::vector<std::vector<uint8_t>> w;
          std::vector<cuda::GpuBuffer> wb, yb;
          cuda::GemvMatrix m[3];
          for (int i = 0; i < 3; ++i) {
            w.push_back(test::random_weights(types[i], rows[i], k, seed++));
            std::vector<uint8_t> packed(w[i].size());
            cuda::repack_weights(types[i], w[i].data(), rows[i], k, packed.data());
            wb.push_back(upload_bytes(packed.data(), packed.size()));
            yb.push_back(poisoned_floats(static_cast<size_t>(n * rows[i])));
            m[i].type = types[i];
            m[i].w = wb[i].get();
            m[i].rows = rows[i];
            m[i].y = yb[i].as<float>();
            m[i].ldy = rows[i];
          }
          const size_t ws_bytes = cuda::gemv_q8_workspace_bytes(m, 3, k, n, sms, kernel);
          cuda::GpuBuffer ws(ws_bytes == 0 ? 16 : ws_bytes);
          cuda::GemvQ8Norm norm{nwb.as<float>(), 1e-5f, nob.as<float>()};
          cuda::GemvQ8Options opt;
          opt.kernel = kernel;
          opt.rows_per_warp = R;
          opt.norm = with_norm ? &norm : nullptr;
          cuda::gemv_q8(m, 3, k, xb.as<float>(), k, n, nullptr, ws.get(), ws.size(), sms, nullptr,
                        opt);
          cuda::device_synchronize("gemv_q8 mixed");
          for (int i = 0; i < 3; ++i) {
            std::vector<float> ref(static_cast<size_t>(n * rows[i]));
            matmul_ref(types[i], w[i].data(), rows[i], k, xin.data(), n, ref.data());
            EXPECT_LE(norm_err(download(yb[i], ref.size()), ref), kBound) << "matrix " << i;
          }
          if (with_norm) {
            ++checked_norm;
            EXPECT_LE(norm_err(download(nob, x.size()), xin), 1e-5) << "normalized output";
          }
        }
      }
    }
  }
  EXPECT_GT(checked_norm, 0);
}

TEST(CudaGemvQ8, RefusesWhatItDoesNotCover) {
  EXPECT_FALSE(cuda::gemv_q8_supported(GgmlType::F16, 256, 1));
  EXPECT_FALSE(cuda::gemv_q8_supported(GgmlType::Q4_K, 288, 1));  // not a multiple of 256
  EXPECT_FALSE(cuda::gemv_q8_supported(GgmlType::Q8_0, 48, 1));   // not a multiple of 32
  EXPECT_FALSE(cuda::gemv_q8_supported(GgmlType::Q6_K, 256, 9, Kernel::kDp4a));  // > 8 tokens
  EXPECT_TRUE(cuda::gemv_q8_supported(GgmlType::Q6_K, 256, 32, Kernel::kMma));
  EXPECT_FALSE(cuda::gemv_q8_supported(GgmlType::Q6_K, 256, 33, Kernel::kMma));  // > 32 tokens
  EXPECT_FALSE(cuda::gemv_q8_supported(GgmlType::Q5_K, 256, 1, Kernel::kMma));   // no mma kernel
  EXPECT_FALSE(cuda::gemv_q8_supported(GgmlType::Q6_K, 256, 0));
  EXPECT_TRUE(cuda::gemv_q8_supported(GgmlType::Q8_0, 32, 8));
  EXPECT_FALSE(cuda::gemv_q8_pair_supported(GgmlType::Q6_K, GgmlType::Q4_K, 256, 1));
  EXPECT_FALSE(cuda::gemv_q8_pair_supported(GgmlType::Q4_K, GgmlType::Q8_0, 256, 1));
  EXPECT_EQ(cuda::gemv_q8_act_stride(4096), 9728);
  cuda::GemvMatrix m;
  m.type = GgmlType::Q4_K;
  m.rows = 4096;
  EXPECT_EQ(cuda::gemv_q8_workspace_bytes(&m, 1, 4096, 4, 132), 0u);  // staged (dp4a)
  EXPECT_EQ(cuda::gemv_q8_workspace_bytes(&m, 1, 14336, 8, 132), 8u * 34048u);
  // Tensor cores: 32 tokens of hi | lo | dl per 256 (16-byte slots), plus split sums.
  EXPECT_GE(cuda::gemv_q8_workspace_bytes(&m, 1, 4096, 32, 132), 32u * (2u * 4096u + 256u));
}

}  // namespace
}  // namespace lw
