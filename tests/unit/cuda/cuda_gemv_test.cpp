// The decode matmul launcher directly: groups of matrices sharing the input, the fused
// residual-add and SwiGLU epilogues, forced K-splits (1, 3, many) and strided outputs,
// against matmul_ref (normalized error <= 2e-3: f16 weights and activations, f32 sums).
// Also the weight repacking round trip and the fused-launch backend path vs unfused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/half.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/gemv_small.h"
#include "kernels/cuda/weight_layout.h"
#include "tests/unit/cuda/cuda_test_util.h"

namespace lw {
namespace {

using test::norm_err;
using test::randn;

std::vector<float> download(const cuda::GpuBuffer& b, size_t n) {
  std::vector<float> v(n);
  cuda::copy_to_host(v.data(), b.get(), n * sizeof(float));
  return v;
}

cuda::GpuBuffer upload_bytes(const void* p, size_t n) {
  cuda::GpuBuffer b(n);
  cuda::copy_to_device(b.get(), p, n);
  return b;
}

cuda::GpuBuffer poisoned_floats(size_t n) {
  cuda::GpuBuffer b(n * sizeof(float));
  cuda::dev_fill_bytes(b.get(), 0xFF, n * sizeof(float));  // all-ones bits: NaN
  return b;
}

TEST(CudaWeightLayout, RepackRoundTripsEveryType) {
  for (GgmlType type : test::all_weight_types()) {
    const std::vector<uint8_t> w = test::random_weights(type, 5, 512, 3);
    std::vector<uint8_t> packed(w.size()), back(w.size());
    cuda::repack_weights(type, w.data(), 5, 512, packed.data());
    cuda::unpack_weights(type, packed.data(), 5, 512, back.data());
    EXPECT_EQ(back, w) << test::type_str(type);
  }
}

// What the tensor-core paths multiply with: every weight within one f16 rounding (relative
// 2^-11, plus an absolute 2^-24 for values near zero) of the exact dequantized value.
TEST(CudaDequant, F16WeightsWithinOneRoundingOfExact) {
  LW_REQUIRE_GPU();
  cuda::set_device(0);
  for (GgmlType type : test::all_weight_types()) {
    SCOPED_TRACE(test::type_str(type));
    const int64_t rows = 9, k = 768;
    const std::vector<uint8_t> w = test::random_weights(type, rows, k, 31);
    uint64_t rb = 0;
    ASSERT_TRUE(row_size(type, k, &rb));
    std::vector<float> exact(static_cast<size_t>(rows * k));
    for (int64_t r = 0; r < rows; ++r) dequantize_row(type, w.data() + r * rb, &exact[r * k], k);
    std::vector<uint8_t> packed(w.size());
    cuda::repack_weights(type, w.data(), rows, k, packed.data());
    cuda::GpuBuffer wb = upload_bytes(packed.data(), packed.size());
    cuda::GpuBuffer ob(exact.size() * 2);
    cuda::dev_fill_bytes(ob.get(), 0xFF, exact.size() * 2);  // f16 NaN
    cuda::dequantize_f16(type, wb.get(), rows, k, 0, rows, ob.as<uint16_t>(), k, nullptr);
    cuda::device_synchronize("dequantize_f16");
    std::vector<uint16_t> h(exact.size());
    cuda::copy_to_host(h.data(), ob.get(), h.size() * 2);
    int bad = 0;
    for (size_t i = 0; i < h.size() && bad < 5; ++i) {
      const float got = fp16_to_fp32(h[i]);
      const float want = exact[i];
      if (!(std::fabs(got - want) <= std::fabs(want) * 4.9e-4f + 6e-8f)) {
        ADD_FAILURE() << "row " << i / k << " col " << i % k << ": f16 " << got << ", exact "
                      << want;
        ++bad;
      }
    }
  }
}

TEST(CudaGemv, GroupsEpiloguesAndSplits) {
  LW_REQUIRE_GPU();
  const cuda::DeviceInfo info = cuda::device_info(0);
  cuda::set_device(0);
  for (GgmlType type : test::all_weight_types()) {
    for (int n_tok : {1, 5, 16, 40}) {
      for (int splits : {1, 3, 0}) {
        SCOPED_TRACE(test::type_str(type) + " n_tok=" + std::to_string(n_tok) +
                     " splits=" + std::to_string(splits));
        const int64_t k = 1024;
        const int64_t rows[3] = {200, 72, 72};
        std::vector<std::vector<uint8_t>> host_w;
        std::vector<cuda::GpuBuffer> dev_w;
        for (int m = 0; m < 3; ++m) {
          host_w.push_back(test::random_weights(type, rows[m], k, 10 * m + n_tok));
          std::vector<uint8_t> packed(host_w.back().size());
          cuda::repack_weights(type, host_w.back().data(), rows[m], k, packed.data());
          dev_w.push_back(upload_bytes(packed.data(), packed.size()));
        }
        // x with a padded row stride.
        const int64_t ldx = k + 4;
        const std::vector<float> x = randn(static_cast<size_t>(n_tok * ldx), 77);
        std::vector<float> xd(static_cast<size_t>(n_tok * k));
        for (int t = 0; t < n_tok; ++t) {
          std::memcpy(&xd[t * k], &x[t * ldx], k * sizeof(float));
        }
        cuda::GpuBuffer xb = upload_bytes(x.data(), x.size() * sizeof(float));
        std::vector<std::vector<float>> ref(3);
        for (int m = 0; m < 3; ++m) {
          ref[m].resize(static_cast<size_t>(n_tok * rows[m]));
          matmul_ref(type, host_w[m].data(), rows[m], k, xd.data(), n_tok, ref[m].data());
        }
        const size_t ws_bytes = 64ull << 20;
        cuda::GpuBuffer ws(ws_bytes);
        cuda::dev_fill_bytes(ws.get(), 0, ws_bytes);
        const cuda::GemvTuning tuning{splits};

        // (a) Three matrices in one launch; the first with a residual add out of place.
        std::vector<cuda::GpuBuffer> ys;
        std::vector<cuda::GemvMatrix> mats(3);
        const std::vector<float> resid = randn(static_cast<size_t>(n_tok * rows[0]), 5);
        cuda::GpuBuffer rb = upload_bytes(resid.data(), resid.size() * sizeof(float));
        cuda::GpuBuffer zb = poisoned_floats(resid.size());
        for (int m = 0; m < 3; ++m) {
          ys.push_back(poisoned_floats(ref[m].size()));
          mats[m].type = type;
          mats[m].w = dev_w[m].get();
          mats[m].rows = rows[m];
          mats[m].y = ys[m].as<float>();
          mats[m].ldy = rows[m];
        }
        mats[0].add_in = rb.as<float>();
        mats[0].add_out = zb.as<float>();
        mats[0].ld_add = rows[0];
        cuda::gemv(mats.data(), 3, k, xb.as<float>(), ldx, n_tok, nullptr, ws.get(), ws_bytes,
                   info.sm_count, nullptr, tuning);
        cuda::device_synchronize("gemv group");
        for (int m = 0; m < 3; ++m) {
          EXPECT_LE(norm_err(download(ys[m], ref[m].size()), ref[m]), 2e-3) << "matrix " << m;
        }
        std::vector<float> want_z(resid.size());
        for (size_t i = 0; i < resid.size(); ++i) want_z[i] = resid[i] + ref[0][i];
        EXPECT_LE(norm_err(download(zb, resid.size()), want_z), 2e-3) << "residual add";

        // (b) A gate/up pair with the SwiGLU epilogue.
        cuda::GpuBuffer sb = poisoned_floats(ref[1].size());
        cuda::GemvSwiglu sw{sb.as<float>(), rows[1]};
        ys[1] = poisoned_floats(ref[1].size());
        ys[2] = poisoned_floats(ref[2].size());
        cuda::GemvMatrix pair[2] = {mats[1], mats[2]};
        pair[0].y = ys[1].as<float>();
        pair[1].y = ys[2].as<float>();
        cuda::gemv(pair, 2, k, xb.as<float>(), ldx, n_tok, &sw, ws.get(), ws_bytes,
                   info.sm_count, nullptr, tuning);
        cuda::device_synchronize("gemv swiglu");
        std::vector<float> want_s(ref[1].size());
        for (size_t i = 0; i < want_s.size(); ++i) {
          const double g = ref[1][i];
          want_s[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * ref[2][i]);
        }
        EXPECT_LE(norm_err(download(sb, want_s.size()), want_s), 3e-3) << "swiglu";
        EXPECT_LE(norm_err(download(ys[1], ref[1].size()), ref[1]), 2e-3) << "gate";
        EXPECT_LE(norm_err(download(ys[2], ref[2].size()), ref[2]), 2e-3) << "up";
      }
    }
  }
}

// The small-batch path (gemv_small.h), forced on, for every type it covers and n_tok 1..4:
// odd row counts (warps with partly dead row streams), k with fewer units than lanes and k
// with a loop tail, a group of three with a residual add and a SwiGLU pair. Its sums are
// all f32, so the bound is 5e-5 (not the 2e-3 of the f16 tensor-core path). An uncovered
// type (Q5_K) with the path forced on must still be right (the old path runs).
TEST(CudaGemvSmall, EveryCoveredTypeTokensAndEpilogues) {
  LW_REQUIRE_GPU();
  const cuda::DeviceInfo info = cuda::device_info(0);
  cuda::set_device(0);
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F16,
                        GgmlType::Q5_K}) {
    const bool covered = type != GgmlType::Q5_K;
    const double bound = covered ? 5e-5 : 2e-3;
    for (int64_t k : {768, 2304, 8192}) {  // 8192: every K-split warp has work
      for (int n_tok = 1; n_tok <= 4; ++n_tok) {
        SCOPED_TRACE(test::type_str(type) + " k=" + std::to_string(k) +
                     " n_tok=" + std::to_string(n_tok));
        EXPECT_EQ(cuda::gemv_small_supported(type, k, n_tok), covered);
        const int64_t rows[3] = {37, 5, 5};
        std::vector<std::vector<uint8_t>> host_w;
        std::vector<cuda::GpuBuffer> dev_w;
        for (int m = 0; m < 3; ++m) {
          host_w.push_back(test::random_weights(type, rows[m], k, 100 + 7 * m + n_tok));
          std::vector<uint8_t> packed(host_w.back().size());
          cuda::repack_weights(type, host_w.back().data(), rows[m], k, packed.data());
          dev_w.push_back(upload_bytes(packed.data(), packed.size()));
        }
        const int64_t ldx = k + 8;
        const std::vector<float> x = randn(static_cast<size_t>(n_tok * ldx), 91 + n_tok);
        std::vector<float> xd(static_cast<size_t>(n_tok * k));
        for (int t = 0; t < n_tok; ++t) std::memcpy(&xd[t * k], &x[t * ldx], k * sizeof(float));
        cuda::GpuBuffer xb = upload_bytes(x.data(), x.size() * sizeof(float));
        std::vector<std::vector<float>> ref(3);
        for (int m = 0; m < 3; ++m) {
          ref[m].resize(static_cast<size_t>(n_tok * rows[m]));
          matmul_ref(type, host_w[m].data(), rows[m], k, xd.data(), n_tok, ref[m].data());
        }
        const size_t ws_bytes = 16ull << 20;
        cuda::GpuBuffer ws(ws_bytes);
        cuda::dev_fill_bytes(ws.get(), 0, ws_bytes);
        // Every kernel shape must give the same (reference) results.
        for (int cfg = 0; cfg < cuda::kGemvSmallConfigs; ++cfg) {
          SCOPED_TRACE("small config " + std::to_string(cfg));
          cuda::GemvTuning tuning;
          tuning.small = 1;
          tuning.small_cfg = cfg;

          // (a) Three matrices, strided outputs, an in-place residual add on the second.
          std::vector<cuda::GpuBuffer> ys;
          std::vector<cuda::GemvMatrix> mats(3);
          const int64_t ldy_pad = 3;
          for (int m = 0; m < 3; ++m) {
            ys.push_back(poisoned_floats(static_cast<size_t>(n_tok * (rows[m] + ldy_pad))));
            mats[m].type = type;
            mats[m].w = dev_w[m].get();
            mats[m].rows = rows[m];
            mats[m].y = ys[m].as<float>();
            mats[m].ldy = rows[m] + ldy_pad;
          }
          const std::vector<float> resid = randn(static_cast<size_t>(n_tok * rows[1]), 6);
          cuda::GpuBuffer rb = upload_bytes(resid.data(), resid.size() * sizeof(float));
          mats[1].add_in = rb.as<float>();
          mats[1].add_out = rb.as<float>();
          mats[1].ld_add = rows[1];
          cuda::gemv(mats.data(), 3, k, xb.as<float>(), ldx, n_tok, nullptr, ws.get(), ws_bytes,
                     info.sm_count, nullptr, tuning);
          cuda::device_synchronize("gemv small group");
          for (int m = 0; m < 3; ++m) {
            const std::vector<float> all =
                download(ys[m], static_cast<size_t>(n_tok * (rows[m] + ldy_pad)));
            std::vector<float> got(ref[m].size());
            for (int t = 0; t < n_tok; ++t) {
              for (int64_t r = 0; r < rows[m]; ++r) {
                got[t * rows[m] + r] = all[t * (rows[m] + ldy_pad) + r];
              }
            }
            EXPECT_LE(norm_err(got, ref[m]), bound) << "matrix " << m;
          }
          std::vector<float> want_z(resid.size());
          for (size_t i = 0; i < resid.size(); ++i) want_z[i] = resid[i] + ref[1][i];
          EXPECT_LE(norm_err(download(rb, resid.size()), want_z), bound) << "residual add";

          // (b) A gate/up pair (odd rows) with the SwiGLU epilogue.
          cuda::GpuBuffer g0 = poisoned_floats(ref[1].size()), g1 = poisoned_floats(ref[2].size());
          cuda::GpuBuffer sb = poisoned_floats(ref[1].size());
          cuda::GemvSwiglu sw{sb.as<float>(), rows[1]};
          cuda::GemvMatrix pair[2] = {mats[1], mats[2]};
          pair[0].y = g0.as<float>();
          pair[0].ldy = rows[1];
          pair[0].add_in = nullptr;
          pair[0].add_out = nullptr;
          pair[1].y = g1.as<float>();
          pair[1].ldy = rows[2];
          cuda::gemv(pair, 2, k, xb.as<float>(), ldx, n_tok, &sw, ws.get(), ws_bytes,
                     info.sm_count, nullptr, tuning);
          cuda::device_synchronize("gemv small swiglu");
          std::vector<float> want_s(ref[1].size());
          for (size_t i = 0; i < want_s.size(); ++i) {
            const double g = ref[1][i];
            want_s[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * ref[2][i]);
          }
          EXPECT_LE(norm_err(download(g0, ref[1].size()), ref[1]), bound) << "gate";
          EXPECT_LE(norm_err(download(g1, ref[2].size()), ref[2]), bound) << "up";
          EXPECT_LE(norm_err(download(sb, want_s.size()), want_s), 10 * bound) << "swiglu";
        }
      }
    }
  }
}

}  // namespace
}  // namespace lw
