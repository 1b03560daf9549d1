#include "kernels/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace lw {
namespace {

using test::random_floats;

TEST(MakeBackend, CpuAndUnavailableNames) {
  auto cpu = make_backend("cpu", 0, 2);
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->name(), "cpu");
  EXPECT_NE(cpu->description().find("2 threads"), std::string::npos) << cpu->description();
  try {
    make_backend("tpu");
    FAIL() << "unknown backend accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackendUnavailable);
    EXPECT_NE(e.message().find("tpu"), std::string::npos);
  }
#ifndef LW_HAVE_CUDA
  try {
    make_backend("cuda");
    FAIL() << "cuda backend created in a build without CUDA";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackendUnavailable);
  }
#endif
}

TEST(CpuBackend, BuffersAlignAndRoundTrip) {
  CpuBackend backend(1);
  for (uint64_t bytes : {1ull, 1000ull, (4ull << 20) + 3}) {
    DeviceBuffer buf = backend.alloc(bytes);
    ASSERT_TRUE(buf);
    EXPECT_GE(buf.size(), bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 256, 0u);
    std::vector<uint8_t> in(bytes), out(bytes, 0);
    for (uint64_t i = 0; i < bytes; ++i) in[i] = static_cast<uint8_t>(i * 7 + 1);
    backend.upload(buf, 0, in.data(), bytes);
    backend.download(buf, 0, out.data(), bytes);
    EXPECT_EQ(in, out);
  }
  DeviceBuffer a = backend.alloc(64);
  DeviceBuffer b = std::move(a);
  EXPECT_FALSE(a);
  EXPECT_TRUE(b);
  b.reset();
  EXPECT_FALSE(b);
}

// Ops through the Backend interface agree with the references (the interface adds nothing
// but must wire the right kernel with the right arguments). Matmul tolerance: normalized
// error 2e-2 for the K-quants and Q8_0 (activations are quantized to 8 bits as in ggml),
// 1e-5 for float weights.
TEST(CpuBackend, OpsMatchReferences) {
  CpuBackend backend(2);
  const int64_t rows = 48, cols = 512, n_tok = 5;
  const auto x = random_floats(n_tok * cols, 1);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                        GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    ASSERT_TRUE(backend.supports(type));
    uint64_t row_bytes = 0;
    ASSERT_TRUE(row_size(type, cols, &row_bytes));
    const auto wf = random_floats(rows * cols, 2);
    std::vector<uint8_t> wq(rows * row_bytes);
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(type, wf.data() + r * cols, wq.data() + r * row_bytes, cols);
    DeviceBuffer wbuf = backend.alloc(backend.weight_device_bytes(type, rows, cols));
    const Weight w = backend.upload_weight(wbuf, 0, type, rows, cols, wq.data());
    EXPECT_EQ(w.rows, rows);
    EXPECT_EQ(w.bytes, rows * row_bytes);
    std::vector<float> want(n_tok * rows), got(want.size());
    test::poison(want);
    test::poison(got);
    matmul_ref(type, wq.data(), rows, cols, x.data(), n_tok, want.data());
    backend.matmul(w, x.data(), n_tok, got.data());
    const bool is_float = type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16;
    EXPECT_LT(test::normalized_error(got, want), is_float ? 1e-5 : 2e-2)
        << type_name(static_cast<uint32_t>(type));

    const std::vector<int32_t> tokens = {3, 47, 0};
    std::vector<float> emb(tokens.size() * cols), emb_want(emb.size());
    test::poison(emb);
    backend.embed(w, tokens.data(), tokens.size(), emb.data());
    for (size_t t = 0; t < tokens.size(); ++t)
      dequantize_row(type, wq.data() + tokens[t] * row_bytes, emb_want.data() + t * cols, cols);
    EXPECT_EQ(emb, emb_want);
  }
  EXPECT_FALSE(backend.supports(GgmlType::Q4_0));

  const auto w = random_floats(cols, 3);
  std::vector<float> want(x.size()), got(x.size());
  test::poison(got);
  rms_norm_ref(x.data(), w.data(), n_tok, cols, 1e-5f, want.data());
  backend.rms_norm(x.data(), w.data(), n_tok, cols, 1e-5f, got.data());
  EXPECT_LT(test::normalized_error(got, want), 1e-6);
}

}  // namespace
}  // namespace lw
