// The engine's KV behaviour end to end on a tiny synthesized model: prefill then decode
// equals one prefill, truncate-then-redo equals a fresh run, sessions batched together equal
// each run alone, budget exhaustion and bad input are typed errors that leave the engine
// usable.
#include "engine/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <optional>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/unit/engine/engine_test_util.h"

namespace lw {
namespace {

template <typename Fn>
ErrorCode error_code_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no lw::Error thrown";
  return ErrorCode::kInternal;
}

// Rows [row0, row0 + n) of an n_rows x width matrix.
std::vector<float> rows_of(const std::vector<float>& m, size_t width, size_t row0, size_t n) {
  return std::vector<float>(m.begin() + row0 * width, m.begin() + (row0 + n) * width);
}

// Tight tolerance for results that take different batchings of the same math: every op
// computes a token's row independently of the other tokens, so only float summation order
// may differ. Normalized error <= 1e-5.
constexpr double kSameMath = 1e-5;

class ModelTest : public testing::Test {
 protected:
  static void SetUpTestSuite() { synth_ = new test::SynthStore("tiny", "q4_k_m", 3, 9); }
  static void TearDownTestSuite() {
    delete synth_;
    synth_ = nullptr;
  }
  void SetUp() override {
    store_.emplace(FragmentStore::open(synth_->path()));
    ModelOptions options;
    options.stack.kv = {.block_size = 4, .budget_blocks = 64};
    model_.emplace(*store_, backend_, options);
  }
  std::vector<int32_t> tokens(size_t n, uint32_t seed) const {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> dist(0, model_->params().vocab_size - 1);
    std::vector<int32_t> t(n);
    for (auto& v : t) v = dist(rng);
    return t;
  }
  size_t vocab() const { return model_->params().vocab_size; }

  static test::SynthStore* synth_;
  CpuBackend backend_{2};
  std::optional<FragmentStore> store_;
  std::optional<Model> model_;
};
test::SynthStore* ModelTest::synth_ = nullptr;

TEST_F(ModelTest, EvalGivesFiniteLogitsThatDependOnContext) {
  const auto toks = tokens(9, 1);
  const auto logits = model_->eval(toks);
  ASSERT_EQ(logits.size(), toks.size() * vocab());
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  // The same last token after a different prefix gives different logits (attention works).
  auto other = toks;
  other[0] = (other[0] + 1) % static_cast<int32_t>(vocab());
  const auto logits2 = model_->eval(other);
  EXPECT_GT(test::rel_error(rows_of(logits2, vocab(), 8, 1), rows_of(logits, vocab(), 8, 1)), 1e-4);
  // eval leaves no session behind.
  EXPECT_EQ(model_->layers().kv().session_count(), 0);
  EXPECT_EQ(model_->layers().kv().free_blocks(), 64);
}

TEST_F(ModelTest, PrefillThenDecodeEqualsOnePrefill) {
  const auto toks = tokens(14, 2);
  const auto full = model_->eval(toks);
  model_->layers().kv().open(5);
  const size_t prefix = 5;
  auto got = model_->forward(5, std::span(toks).first(prefix), 0);
  EXPECT_LT(test::rel_error(got, rows_of(full, vocab(), 0, prefix)), kSameMath);
  for (size_t i = prefix; i < toks.size(); ++i) {
    got = model_->forward(5, std::span(toks).subspan(i, 1), static_cast<int32_t>(i));
    EXPECT_LT(test::rel_error(got, rows_of(full, vocab(), i, 1)), kSameMath) << "position " << i;
  }
  EXPECT_EQ(model_->layers().kv().length(5), 14);
}

TEST_F(ModelTest, TruncateThenRedoEqualsFreshRun) {
  const auto a = tokens(11, 3), b = tokens(6, 4);
  KvCache& kv = model_->layers().kv();
  kv.open(1);
  model_->forward(1, a, 0);
  for (int32_t cut : {8, 5, 4, 0}) {  // mid-block, mid-block, block boundary, everything
    kv.truncate(1, cut);
    EXPECT_EQ(kv.length(1), cut);
    const auto redo = model_->forward(1, b, cut);
    std::vector<int32_t> fresh_tokens(a.begin(), a.begin() + cut);
    fresh_tokens.insert(fresh_tokens.end(), b.begin(), b.end());
    const auto fresh = model_->eval(fresh_tokens);
    EXPECT_LT(test::rel_error(redo, rows_of(fresh, vocab(), cut, b.size())), kSameMath)
        << "cut " << cut;
    kv.truncate(1, cut);
    model_->forward(1, std::span(a).subspan(cut), cut);  // back to the full `a`
  }
}

// Two sessions in one batch (prefill chunks, then a decode step and a chunk) give the same
// hidden states as each session run alone.
TEST_F(ModelTest, InterleavedSessionsEqualSeparateRuns) {
  LayerStack& stack = model_->layers();
  Head& head = model_->head();
  const size_t dim = model_->params().dim;
  const auto ta = tokens(7, 5), tb = tokens(4, 6);
  std::vector<float> xa(ta.size() * dim), xb(tb.size() * dim);
  head.embed(ta, xa);
  head.embed(tb, xb);
  // Alone.
  std::vector<float> alone_a(xa.size()), alone_b(xb.size());
  stack.kv().open(10);
  stack.kv().open(11);
  const BatchEntry a1{10, 7, 0}, b1{11, 4, 0};
  stack.forward({&a1, 1}, xa, alone_a);
  stack.forward({&b1, 1}, xb, alone_b);
  // Together, in two steps: [a 0..4, b 0..2] then [b 3, a 5..6].
  stack.kv().open(20);
  stack.kv().open(21);
  std::vector<float> in1, in2;
  in1.insert(in1.end(), xa.begin(), xa.begin() + 5 * dim);
  in1.insert(in1.end(), xb.begin(), xb.begin() + 3 * dim);
  const BatchEntry step1[] = {{20, 5, 0}, {21, 3, 0}};
  std::vector<float> out1(in1.size());
  stack.forward(step1, in1, out1);
  in2.insert(in2.end(), xb.begin() + 3 * dim, xb.end());
  in2.insert(in2.end(), xa.begin() + 5 * dim, xa.end());
  const BatchEntry step2[] = {{21, 1, 3}, {20, 2, 5}};
  std::vector<float> out2(in2.size());
  stack.forward(step2, in2, out2);

  EXPECT_LT(test::rel_error(rows_of(out1, dim, 0, 5), rows_of(alone_a, dim, 0, 5)), kSameMath);
  EXPECT_LT(test::rel_error(rows_of(out1, dim, 5, 3), rows_of(alone_b, dim, 0, 3)), kSameMath);
  EXPECT_LT(test::rel_error(rows_of(out2, dim, 0, 1), rows_of(alone_b, dim, 3, 1)), kSameMath);
  EXPECT_LT(test::rel_error(rows_of(out2, dim, 1, 2), rows_of(alone_a, dim, 5, 2)), kSameMath);
  // And the sessions really differ (so mixing them up would be seen).
  EXPECT_GT(test::rel_error(rows_of(alone_a, dim, 0, 3), rows_of(alone_b, dim, 0, 3)), 0.1);
}

TEST_F(ModelTest, BudgetExhaustionIsTypedAndRecoverable) {
  KvCache& kv = model_->layers().kv();
  const auto big = tokens(200, 7);  // 50 blocks of 4
  const auto more = tokens(60, 8);  // 15 blocks: does not fit next to `big`
  kv.open(1);
  kv.open(2);
  model_->forward(1, big, 0);
  try {
    model_->forward(2, more, 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kKvExhausted);
    EXPECT_EQ(e.kind(), ErrorKind::Overloaded);
  }
  EXPECT_EQ(kv.length(2), 0);
  EXPECT_EQ(kv.free_blocks(), 14);
  kv.close(1);
  const auto after = model_->forward(2, more, 0);
  kv.close(2);
  const auto fresh = model_->eval(more);
  EXPECT_LT(test::rel_error(after, fresh), kSameMath);
}

TEST_F(ModelTest, BadInputIsTyped) {
  LayerStack& stack = model_->layers();
  const size_t dim = model_->params().dim;
  std::vector<float> x(3 * dim, 0.5f), y(3 * dim);
  const BatchEntry e{42, 3, 0};
  EXPECT_EQ(error_code_of([&] { stack.forward({&e, 1}, x, y); }), ErrorCode::kEngineSession);
  stack.kv().open(42);
  const BatchEntry gap{42, 3, 2};
  EXPECT_EQ(error_code_of([&] { stack.forward({&gap, 1}, x, y); }), ErrorCode::kEnginePosition);
  std::vector<float> short_x(2 * dim);
  EXPECT_EQ(error_code_of([&] { stack.forward({&e, 1}, short_x, y); }), ErrorCode::kEngineShape);
  const BatchEntry twice[] = {{42, 1, 0}, {42, 2, 1}};
  EXPECT_EQ(error_code_of([&] { stack.forward(twice, x, y); }), ErrorCode::kEngineShape);
  const BatchEntry none{42, 0, 0};
  EXPECT_EQ(error_code_of([&] { stack.forward({&none, 1}, {}, {}); }), ErrorCode::kEngineShape);
  EXPECT_EQ(error_code_of([&] { stack.forward({}, {}, {}); }), ErrorCode::kEngineShape);
  EXPECT_EQ(stack.kv().length(42), 0);  // nothing changed
  stack.forward({&e, 1}, x, y);         // and the session still works
  EXPECT_EQ(stack.kv().length(42), 3);

  const std::vector<int32_t> bad = {1, static_cast<int32_t>(vocab()), 2};
  EXPECT_EQ(error_code_of([&] { model_->eval(bad); }), ErrorCode::kEngineShape);
  const std::vector<int32_t> negative = {-1};
  EXPECT_EQ(error_code_of([&] { model_->eval(negative); }), ErrorCode::kEngineShape);
  EXPECT_EQ(error_code_of([&] {
              LayerStack s(*store_, LayerRange{2, 4}, backend_);
            }),
            ErrorCode::kFragLayerRange);
  LayerStackOptions small;
  small.max_batch_tokens = 2;
  LayerStack limited(*store_, LayerRange{0, 1}, backend_, small);
  limited.kv().open(1);
  EXPECT_EQ(error_code_of([&] { limited.forward({&e, 1}, x, y); }), ErrorCode::kEngineSession);
  const BatchEntry three{1, 3, 0};
  EXPECT_EQ(error_code_of([&] { limited.forward({&three, 1}, x, y); }), ErrorCode::kEngineShape);
}

// A flipped byte in a layer's tensor data is caught while loading, naming the tensor.
TEST(LayerStackLoad, CorruptFragmentIsRefused) {
  test::SynthStore synth("tiny", "q8_0", 2, 3);
  {
    FragmentStore store = FragmentStore::open(synth.path());
    const auto [frag, tensor] = store.manifest().find_tensor("blk.1.ffn_up.weight");
    ASSERT_NE(tensor, nullptr);
    std::fstream f(synth.path() / frag->file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(tensor->offset + 100));
    char byte = 0;
    f.read(&byte, 1);
    byte ^= 0x10;
    f.seekp(static_cast<std::streamoff>(tensor->offset + 100));
    f.write(&byte, 1);
  }
  FragmentStore store = FragmentStore::open(synth.path());
  CpuBackend backend(1);
  LayerStack ok(store, LayerRange{0, 1}, backend);  // layer 0 is intact
  try {
    LayerStack bad(store, LayerRange{0, 2}, backend);
    FAIL() << "corrupt layer loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFragChecksum);
    EXPECT_NE(std::string(e.what()).find("blk.1.ffn_up.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lw
