// Whole-model checks of the CUDA backend on tiny synthesized models: logits against the CPU
// reference backend (normalized error <= 1e-3 and the same argmax at every position), with
// op fusion and CUDA graphs on and off; prefill-then-decode against one full prefill on the
// GPU (decode on the int8 GEMV, and with it off); sessions batched together against each run
// alone; decode steps replayed from a captured CUDA graph still match the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>

#include "engine/model.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "tests/unit/cuda/cuda_test_util.h"
#include "tests/unit/engine/engine_test_util.h"

namespace lw {
namespace {

constexpr double kModelBound = 1e-3;

std::vector<int32_t> random_tokens(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> t(n);
  for (auto& v : t) v = dist(rng);
  return t;
}

// Positions (rows) whose argmax differs between a and b (n x vocab).
std::vector<size_t> argmax_mismatches(const std::vector<float>& a, const std::vector<float>& b,
                                      size_t vocab) {
  std::vector<size_t> bad;
  for (size_t r = 0; r * vocab < a.size(); ++r) {
    const auto ia = std::max_element(a.begin() + r * vocab, a.begin() + (r + 1) * vocab);
    const auto ib = std::max_element(b.begin() + r * vocab, b.begin() + (r + 1) * vocab);
    if (ia - a.begin() != ib - b.begin()) bad.push_back(r);
  }
  return bad;
}

std::vector<float> rows_of(const std::vector<float>& m, size_t width, size_t row0, size_t n) {
  return std::vector<float>(m.begin() + row0 * width, m.begin() + (row0 + n) * width);
}

ModelOptions small_kv() {
  ModelOptions o;
  o.stack.kv = {.block_size = 16, .budget_blocks = 128};
  return o;
}

struct ModelCase {
  std::string preset, quant;
  bool fuse, graphs;
};

class CudaModelTest : public testing::TestWithParam<ModelCase> {};

TEST_P(CudaModelTest, LogitsMatchCpuReference) {
  LW_REQUIRE_GPU();
  const ModelCase& c = GetParam();
  test::SynthStore synth(c.preset, c.quant, 3, 5);
  FragmentStore store = FragmentStore::open(synth.path());
  test::RefBackend ref_backend;
  auto gpu = test::cuda_backend(c.fuse, c.graphs);
  Model ref(store, ref_backend, small_kv());
  Model dev(store, *gpu, small_kv());
  const size_t vocab = static_cast<size_t>(ref.params().vocab_size);
  // 70 tokens: prefill matmuls take the cuBLAS path (>= 17 tokens); 9 takes the int8 GEMV
  // (quantized weights) or the f16 GEMV.
  for (size_t n : {9, 70}) {
    SCOPED_TRACE("tokens=" + std::to_string(n));
    const std::vector<int32_t> tokens = random_tokens(n, ref.params().vocab_size, 3 + n);
    const std::vector<float> want = ref.eval(tokens);
    const std::vector<float> got = dev.eval(tokens);
    const double err = test::norm_err(got, want);
    std::printf("[model] %s %s fuse=%d graphs=%d tokens=%zu normalized error %.3g\n",
                c.preset.c_str(), c.quant.c_str(), c.fuse, c.graphs, n, err);
    EXPECT_LE(err, kModelBound);
    EXPECT_TRUE(argmax_mismatches(got, want, vocab).empty())
        << argmax_mismatches(got, want, vocab).size() << " positions differ in argmax";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Presets, CudaModelTest,
    testing::Values(ModelCase{"tiny", "q4_k_m", true, true},
                    ModelCase{"tiny", "q4_k_m", false, false},
                    ModelCase{"tiny", "q8_0", true, true}, ModelCase{"tiny", "f16", true, true},
                    ModelCase{"tiny-magistral", "q4_k_m", true, true},
                    ModelCase{"tiny-magistral", "f32", true, false}),
    [](const testing::TestParamInfo<ModelCase>& i) {
      std::string s = i.param.preset + "_" + i.param.quant + (i.param.fuse ? "_fused" : "_plain") +
                      (i.param.graphs ? "_graphs" : "");
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

class CudaDecodeTest : public testing::Test {
 protected:
  static void SetUpTestSuite() { synth_ = new test::SynthStore("tiny", "q4_k_m", 3, 9); }
  static void TearDownTestSuite() {
    delete synth_;
    synth_ = nullptr;
  }
  static test::SynthStore* synth_;
};
test::SynthStore* CudaDecodeTest::synth_ = nullptr;

// The decode steps on the int8 GEMV (default) or on the f32 / f16 GEMV kernels (int8 off);
// the 90-token prefill takes the cuBLAS path either way.
class CudaDecodePaths : public CudaDecodeTest, public testing::WithParamInterface<bool> {};

TEST_P(CudaDecodePaths, PrefillThenDecodeEqualsFullPrefill) {
  LW_REQUIRE_GPU();
  FragmentStore store = FragmentStore::open(synth_->path());
  CudaBackendOptions o;
  if (!GetParam()) o.int8_gemv_max_tokens = 0;
  auto gpu = make_cuda_backend(o);
  Model model(store, *gpu, small_kv());
  const size_t vocab = static_cast<size_t>(model.params().vocab_size);
  const std::vector<int32_t> tokens = random_tokens(90, model.params().vocab_size, 21);
  const std::vector<float> full = model.eval(tokens);  // one prefill of 90 (cuBLAS path)
  for (size_t prefill : {size_t{1}, size_t{40}, size_t{70}}) {
    SCOPED_TRACE("prefill " + std::to_string(prefill));
    const SessionId s = 100 + prefill;
    model.layers().kv().open(s);
    std::vector<float> got = model.forward(s, {tokens.data(), prefill}, 0);
    for (size_t i = prefill; i < tokens.size(); ++i) {
      const std::vector<float> step = model.forward(s, {tokens.data() + i, 1},
                                                    static_cast<int32_t>(i));
      got.insert(got.end(), step.begin(), step.end());
    }
    model.layers().kv().close(s);
    const double err = test::norm_err(got, full);
    std::printf("[decode] int8=%d prefill %zu then decode vs full prefill: normalized error %.3g\n",
                GetParam() ? 1 : 0, prefill, err);
    EXPECT_LE(err, kModelBound);
    EXPECT_TRUE(argmax_mismatches(got, full, vocab).empty());
  }
  auto* cb = dynamic_cast<cuda_impl::CudaBackend*>(gpu.get());
  ASSERT_NE(cb, nullptr);
  EXPECT_GT(cb->stats().replayed, 10u) << "decode steps should replay a captured CUDA graph";
}

INSTANTIATE_TEST_SUITE_P(Int8, CudaDecodePaths, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& i) {
                           return std::string(i.param ? "int8_gemv" : "int8_off");
                         });

TEST_F(CudaDecodeTest, BatchedSessionsEqualEachAloneAndReference) {
  LW_REQUIRE_GPU();
  FragmentStore store = FragmentStore::open(synth_->path());
  auto gpu = test::cuda_backend();
  test::RefBackend ref_backend;
  Model model(store, *gpu, small_kv());
  Model ref(store, ref_backend, small_kv());
  const int64_t vocab = model.params().vocab_size;
  const int64_t dim = model.params().dim;
  // Three sessions of different lengths, then 6 decode steps of all three in one batch.
  const std::vector<size_t> lens = {5, 17, 33};
  std::vector<std::vector<int32_t>> toks;
  for (size_t s = 0; s < lens.size(); ++s) toks.push_back(random_tokens(lens[s] + 6, vocab, 40 + s));
  for (Model* m : {&model, &ref}) {
    for (size_t s = 0; s < lens.size(); ++s) {
      m->layers().kv().open(s + 1);
      m->forward(s + 1, {toks[s].data(), lens[s]}, 0);
    }
  }
  for (int step = 0; step < 6; ++step) {
    std::vector<BatchEntry> batch;
    std::vector<int32_t> ids;
    for (size_t s = 0; s < lens.size(); ++s) {
      batch.push_back({s + 1, 1, static_cast<int32_t>(lens[s] + step)});
      ids.push_back(toks[s][lens[s] + step]);
    }
    std::vector<float> hidden(ids.size() * dim), out_gpu(hidden.size()), out_ref(hidden.size());
    model.head().embed(ids, hidden);
    model.layers().forward(batch, hidden, out_gpu);
    std::vector<float> hidden_ref(hidden.size());
    ref.head().embed(ids, hidden_ref);
    ref.layers().forward(batch, hidden_ref, out_ref);
    const double err = test::norm_err(out_gpu, out_ref);
    EXPECT_LE(err, kModelBound) << "step " << step;
  }
  // Each session alone, recomputed from scratch on the GPU, gives the same last hidden state.
  for (size_t s = 0; s < lens.size(); ++s) {
    const std::vector<float> alone = model.eval(toks[s]);
    const SessionId fresh = 50 + s;
    model.layers().kv().open(fresh);
    const std::vector<float> again = model.forward(fresh, toks[s], 0);
    model.layers().kv().close(fresh);
    EXPECT_LE(test::norm_err(rows_of(again, vocab, lens[s] + 5, 1),
                             rows_of(alone, vocab, lens[s] + 5, 1)),
              1e-5);
  }
}

}  // namespace
}  // namespace lw
