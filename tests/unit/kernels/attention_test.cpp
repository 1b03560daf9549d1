#include "kernels/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "common/half.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace lw {
namespace {

using test::random_floats;

// A KV pool filled with random f16 values and a batch of query tokens from several sessions,
// each session owning a random (non-contiguous) set of physical blocks.
struct PagedFixture {
  int32_t n_blocks, n_kv_heads, block_size, head_dim;
  std::vector<uint16_t> k, v;
  std::vector<int32_t> positions, table_offsets, tables;

  PagedFixture(int32_t n_kv, int32_t bs, int32_t hd, const std::vector<int32_t>& lengths,
               int32_t queries_per_session, uint32_t seed)
      : n_kv_heads(n_kv), block_size(bs), head_dim(hd) {
    std::mt19937 rng(seed);
    int32_t needed = 0;
    for (int32_t len : lengths) needed += (len + bs - 1) / bs;
    n_blocks = needed + 3;  // spare blocks nobody owns
    std::vector<int32_t> ids(n_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    size_t next = 0;
    for (int32_t len : lengths) {
      const int32_t offset = static_cast<int32_t>(tables.size());
      for (int32_t b = 0; b < (len + bs - 1) / bs; ++b) tables.push_back(ids[next++]);
      // The last positions of the session (a prefill chunk), in order.
      for (int32_t q = std::max(0, len - queries_per_session); q < len; ++q) {
        positions.push_back(q);
        table_offsets.push_back(offset);
      }
    }
    const size_t elems = static_cast<size_t>(n_blocks) * n_kv * bs * hd;
    const auto kf = random_floats(elems, seed + 1), vf = random_floats(elems, seed + 2);
    k.resize(elems);
    v.resize(elems);
    for (size_t i = 0; i < elems; ++i) {
      k[i] = fp32_to_fp16(kf[i]);
      v[i] = fp32_to_fp16(vf[i]);
    }
  }
  KvLayerView view() {
    return KvLayerView{k.data(), v.data(), n_blocks, n_kv_heads, block_size, head_dim};
  }
  AttentionBatch batch() const {
    AttentionBatch b;
    b.n_tokens = static_cast<int32_t>(positions.size());
    b.max_position = *std::max_element(positions.begin(), positions.end());
    b.positions = positions.data();
    b.table_offsets = table_offsets.data();
    b.block_tables = tables.data();
    return b;
  }
};

class AttentionTest : public testing::TestWithParam<CpuIsa> {};

// Tolerance: the fast version (f32 scores, online softmax) against the double reference,
// normalized error <= 2e-6.
TEST_P(AttentionTest, MatchesReferenceEveryGqaRatio) {
  LW_SKIP_IF_ISA_MISSING(GetParam());
  ThreadPool pool(3);
  uint32_t seed = 100;
  for (int32_t group : {1, 2, 3, 4, 8, 12}) {
    for (int32_t head_dim : {8, 40, 128}) {
      for (int32_t block_size : {1, 7, 16}) {
        const int32_t n_kv = group >= 8 ? 1 : 2;
        const int64_t n_heads = static_cast<int64_t>(n_kv) * group;
        PagedFixture f(n_kv, block_size, head_dim, {1, 23, 50}, 5, seed++);
        const AttentionBatch batch = f.batch();
        const auto q = random_floats(batch.n_tokens * n_heads * head_dim, seed++);
        std::vector<float> want(q.size()), got(q.size());
        test::poison(want);
        test::poison(got);
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        attention_ref(f.view(), batch, q.data(), n_heads, scale, want.data());
        attention(pool, GetParam(), f.view(), batch, q.data(), n_heads, scale, got.data());
        EXPECT_LT(test::normalized_error(got, want), 2e-6)
            << "group " << group << " head_dim " << head_dim << " block " << block_size;
      }
    }
  }
}

// Hand-checkable: with one position the output is that position's V; with two positions
// of equal K it is the mean of the two Vs.
TEST_P(AttentionTest, KnownValues) {
  LW_SKIP_IF_ISA_MISSING(GetParam());
  ThreadPool pool(2);
  PagedFixture f(1, 4, 16, {2}, 2, 7);
  const int32_t block = f.tables[0];
  const auto kv = f.view();
  std::copy_n(f.k.begin() + kv.offset(block, 0, 0), 16, f.k.begin() + kv.offset(block, 0, 1));
  const auto q = random_floats(2 * 16, 3);
  for (bool ref : {true, false}) {
    std::vector<float> out(q.size());
    test::poison(out);
    if (ref) {
      attention_ref(kv, f.batch(), q.data(), 1, 0.25f, out.data());
    } else {
      attention(pool, GetParam(), kv, f.batch(), q.data(), 1, 0.25f, out.data());
    }
    for (int i = 0; i < 16; ++i) {
      const float v0 = fp16_to_fp32(f.v[kv.offset(block, 0, 0) + i]);
      const float v1 = fp16_to_fp32(f.v[kv.offset(block, 0, 1) + i]);
      EXPECT_NEAR(out[i], v0, 1e-6);                  // token at position 0
      EXPECT_NEAR(out[16 + i], (v0 + v1) / 2, 1e-6);  // token at position 1
    }
  }
}

// kv_write stores exactly the reference's f16 bits (round to nearest even) in the right
// block and slot, and touches nothing else.
TEST_P(AttentionTest, KvWriteMatchesReference) {
  LW_SKIP_IF_ISA_MISSING(GetParam());
  ThreadPool pool(3);
  for (int32_t head_dim : {8, 36, 128}) {
    PagedFixture a(2, 5, head_dim, {3, 17, 9}, 17, 40 + head_dim);
    PagedFixture b = a;
    const AttentionBatch batch = a.batch();
    const auto k = random_floats(batch.n_tokens * 2 * head_dim, 1);
    const auto v = random_floats(batch.n_tokens * 2 * head_dim, 2);
    const auto before = a.k;
    kv_write_ref(a.view(), batch, k.data(), v.data());
    kv_write(pool, GetParam(), b.view(), b.batch(), k.data(), v.data());
    EXPECT_EQ(a.k, b.k);
    EXPECT_EQ(a.v, b.v);
    EXPECT_NE(a.k, before);
    // Spot check one value: token 0 (session 0, position 0), KV head 1, element 3.
    const auto view = a.view();
    EXPECT_EQ(a.k[view.offset(a.tables[0], 1, 0) + 3], fp32_to_fp16(k[head_dim + 3]));
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, AttentionTest, testing::ValuesIn(test::all_isas()),
                         test::isa_test_name);

}  // namespace
}  // namespace lw
