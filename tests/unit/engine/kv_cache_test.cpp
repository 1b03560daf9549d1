#include "engine/kv_cache.h"

#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"

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

class KvCacheTest : public testing::Test {
 protected:
  CpuBackend backend_{1};
};

TEST_F(KvCacheTest, BudgetFromBlocksBytesAndTokens) {
  const uint64_t per_block = KvCache::block_bytes(2, 4, 16, 8);
  EXPECT_EQ(per_block, 2u * 2 * 2 * 4 * 16 * 8);
  KvCache by_blocks(backend_, 2, 4, 16, {.block_size = 8, .budget_blocks = 5});
  EXPECT_EQ(by_blocks.total_blocks(), 5);
  EXPECT_EQ(by_blocks.pool_bytes(), 5 * per_block);
  KvCache by_bytes(backend_, 2, 4, 16, {.block_size = 8, .budget_bytes = 3 * per_block + 7});
  EXPECT_EQ(by_bytes.total_blocks(), 3);
  KvCache by_tokens(backend_, 2, 4, 16, {.block_size = 8, .budget_tokens = 17});
  EXPECT_EQ(by_tokens.total_blocks(), 3);  // 17 tokens round up to 3 blocks of 8
  EXPECT_EQ(error_code_of([&] {
              KvCache c(backend_, 2, 4, 16, {.block_size = 8, .budget_bytes = per_block - 1});
            }),
            ErrorCode::kKvExhausted);
  EXPECT_EQ(error_code_of([&] { KvCache c(backend_, 2, 4, 16, {.block_size = 0}); }),
            ErrorCode::kEngineShape);
  EXPECT_EQ(error_code_of([&] { KvCache c(backend_, 2, 4, 16, {.block_size = 257}); }),
            ErrorCode::kEngineShape);
}

TEST_F(KvCacheTest, AppendTruncateCloseAccountBlocks) {
  KvCache kv(backend_, 1, 2, 8, {.block_size = 4, .budget_blocks = 6});
  kv.open(1);
  kv.open(2);
  EXPECT_EQ(kv.length(1), 0);
  kv.append(1, 0, 5);  // positions 0..4 -> 2 blocks
  EXPECT_EQ(kv.length(1), 5);
  EXPECT_EQ(kv.block_table(1).size(), 2u);
  EXPECT_EQ(kv.free_blocks(), 4);
  kv.append(1, 5, 3);  // up to 8 positions: still 2 blocks
  EXPECT_EQ(kv.block_table(1).size(), 2u);
  kv.append(2, 0, 9);  // 3 blocks
  EXPECT_EQ(kv.free_blocks(), 1);
  // Tables never share a block.
  std::set<int32_t> ids(kv.block_table(1).begin(), kv.block_table(1).end());
  for (int32_t b : kv.block_table(2)) EXPECT_TRUE(ids.insert(b).second) << b;
  for (int32_t b : ids) EXPECT_TRUE(b >= 0 && b < 6);

  kv.truncate(2, 4);  // keeps exactly 1 block
  EXPECT_EQ(kv.length(2), 4);
  EXPECT_EQ(kv.block_table(2).size(), 1u);
  EXPECT_EQ(kv.free_blocks(), 3);
  kv.truncate(2, 0);
  EXPECT_EQ(kv.block_table(2).size(), 0u);
  EXPECT_EQ(kv.free_blocks(), 4);
  kv.close(1);
  EXPECT_EQ(kv.free_blocks(), 6);
  EXPECT_FALSE(kv.contains(1));
  EXPECT_TRUE(kv.contains(2));
  EXPECT_EQ(kv.session_count(), 1);
}

TEST_F(KvCacheTest, ExhaustionIsTypedAndLeavesCacheUsable) {
  KvCache kv(backend_, 1, 1, 8, {.block_size = 4, .budget_blocks = 3});
  kv.open(7);
  kv.open(8);
  kv.append(7, 0, 8);  // 2 blocks
  try {
    kv.append(8, 0, 5);  // needs 2, 1 free
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kKvExhausted);
    EXPECT_EQ(e.kind(), ErrorKind::Overloaded);
    EXPECT_NE(e.message().find("needs 2 more blocks"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("only 1 of 3 free"), std::string::npos) << e.what();
  }
  EXPECT_EQ(kv.length(8), 0);  // unchanged
  EXPECT_EQ(kv.free_blocks(), 1);
  kv.append(8, 0, 4);  // fits
  EXPECT_EQ(kv.free_blocks(), 0);
  kv.close(7);
  kv.append(8, 4, 5);
  EXPECT_EQ(kv.length(8), 9);
}

TEST_F(KvCacheTest, SessionAndPositionErrors) {
  KvCache kv(backend_, 1, 1, 8, {.block_size = 4, .budget_blocks = 3});
  EXPECT_EQ(error_code_of([&] { kv.length(3); }), ErrorCode::kEngineSession);
  EXPECT_EQ(error_code_of([&] { kv.append(3, 0, 1); }), ErrorCode::kEngineSession);
  EXPECT_EQ(error_code_of([&] { kv.close(3); }), ErrorCode::kEngineSession);
  kv.open(3);
  EXPECT_EQ(error_code_of([&] { kv.open(3); }), ErrorCode::kEngineSession);
  EXPECT_EQ(error_code_of([&] { kv.append(3, 1, 1); }), ErrorCode::kEnginePosition);
  kv.append(3, 0, 2);
  EXPECT_EQ(error_code_of([&] { kv.append(3, 1, 1); }), ErrorCode::kEnginePosition);
  EXPECT_EQ(error_code_of([&] { kv.truncate(3, 3); }), ErrorCode::kEnginePosition);
  EXPECT_EQ(error_code_of([&] { kv.truncate(3, -1); }), ErrorCode::kEnginePosition);
  kv.close(3);
  EXPECT_EQ(error_code_of([&] { kv.truncate(3, 0); }), ErrorCode::kEngineSession);
  EXPECT_EQ(kv.free_blocks(), 3);
}

TEST_F(KvCacheTest, LayerViewsPartitionThePool) {
  KvCache kv(backend_, 3, 2, 8, {.block_size = 4, .budget_blocks = 5});
  const KvLayerView v0 = kv.layer_view(0), v2 = kv.layer_view(2);
  const int64_t per_kv = 5 * 2 * 4 * 8;
  EXPECT_EQ(v0.v - v0.k, per_kv);
  EXPECT_EQ(v2.k - v0.k, 4 * per_kv);
  EXPECT_EQ(static_cast<uint64_t>((v2.v + per_kv) - v0.k) * 2, kv.pool_bytes());
  EXPECT_EQ(v0.offset(1, 1, 2), ((1 * 2 + 1) * 4 + 2) * 8);
}

}  // namespace
}  // namespace lw
