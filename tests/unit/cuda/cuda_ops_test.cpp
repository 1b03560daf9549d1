// Every CUDA op through the Backend interface against the CPU reference, on random data,
// odd sizes, every weight format and every GQA ratio, outputs NaN-poisoned first. Bounds
// (normalized error ||gpu - ref|| / ||ref||), stated per op:
//   matmul, 1..16 tokens, Q4_K/Q5_K/Q6_K/Q8_0 (int8 GEMV: exact weights, ~15-bit
//     activations, f32 sums; measured ~1e-5): 2e-3 like the rest, tightened in
//     cuda_gemv_q8_test.cpp to 1e-4
//   matmul, 1..16 tokens, F16 / BF16 / F32 (gemv: weights and activations rounded to f16,
//     f32 accumulation): 2e-3
//   matmul, >= 17 tokens (dequantize to f16 + cuBLAS, f32 accumulation): 2e-3;
//     F32 weights (cuBLAS f32): 1e-5
//   embed (exact dequantization): bit-identical
//   rms_norm, add, swiglu, rope: 1e-5 (f32 vs double/f32 reference)
//   kv_write: bit-identical f16 cache; attention: 1e-4 (f32 scores vs double)
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_decode.h"
#include "tests/unit/cuda/cuda_test_util.h"

namespace lw {
namespace {

using test::from_device;
using test::norm_err;
using test::poisoned;
using test::randn;
using test::to_device;

class CudaMatmulTest : public testing::TestWithParam<GgmlType> {};

TEST_P(CudaMatmulTest, MatchesReferenceOnOddShapes) {
  LW_REQUIRE_GPU();
  const GgmlType type = GetParam();
  const bool kquant = type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K;
  struct Shape {
    int64_t rows, k, n_tok;
  };
  std::vector<Shape> shapes;
  const std::vector<int64_t> ks = kquant ? std::vector<int64_t>{256, 768, 2560}
                                         : std::vector<int64_t>{32, 96, 288, 2080};
  for (int64_t k : ks) {
    for (int64_t rows : {1, 17, 67, 260}) {
      for (int64_t n_tok : {1, 3, 8, 9, 33, 64, 65, 130}) {
        if (k > 1000 && rows > 100 && n_tok > 64) continue;  // keep memcheck runs short
        shapes.push_back({rows, k, n_tok});
      }
    }
  }
  auto gpu = test::cuda_backend();
  uint32_t seed = 100;
  for (const Shape& s : shapes) {
    SCOPED_TRACE(test::type_str(type) + " rows=" + std::to_string(s.rows) +
                 " k=" + std::to_string(s.k) + " n_tok=" + std::to_string(s.n_tok));
    const std::vector<uint8_t> w = test::random_weights(type, s.rows, s.k, seed++);
    const std::vector<float> x = randn(static_cast<size_t>(s.n_tok * s.k), seed++);
    std::vector<float> ref(static_cast<size_t>(s.n_tok * s.rows));
    matmul_ref(type, w.data(), s.rows, s.k, x.data(), s.n_tok, ref.data());

    DeviceBuffer wbuf = gpu->alloc(gpu->weight_device_bytes(type, s.rows, s.k));
    const Weight dw = gpu->upload_weight(wbuf, 0, type, s.rows, s.k, w.data());
    EXPECT_EQ(dw.bytes, w.size()) << "device bytes must equal the GGUF bytes";
    DeviceBuffer xb = to_device(*gpu, x);
    DeviceBuffer yb = poisoned(*gpu, ref.size());
    gpu->matmul(dw, xb.as<float>(), s.n_tok, yb.as<float>());
    const std::vector<float> y = from_device<float>(*gpu, yb, ref.size());
    const double bound =
        (type == GgmlType::F32 && s.n_tok >= CudaBackendOptions{}.gemm_min_tokens) ? 1e-5 : 2e-3;
    EXPECT_LE(norm_err(y, ref), bound);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaMatmulTest, testing::ValuesIn(test::all_weight_types()),
                         [](const testing::TestParamInfo<GgmlType>& i) {
                           return test::type_str(i.param);
                         });

TEST(CudaOps, EmbedIsExactDequantization) {
  LW_REQUIRE_GPU();
  auto gpu = test::cuda_backend();
  for (GgmlType type : test::all_weight_types()) {
    SCOPED_TRACE(test::type_str(type));
    const int64_t rows = 37, cols = 512;
    const std::vector<uint8_t> w = test::random_weights(type, rows, cols, 7);
    uint64_t rb = 0;
    ASSERT_TRUE(row_size(type, cols, &rb));
    const std::vector<int32_t> tokens = {36, 0, 5, 5, 17};
    std::vector<float> ref(tokens.size() * cols);
    for (size_t t = 0; t < tokens.size(); ++t) {
      dequantize_row(type, w.data() + tokens[t] * rb, ref.data() + t * cols, cols);
    }
    DeviceBuffer wbuf = gpu->alloc(gpu->weight_device_bytes(type, rows, cols));
    const Weight dw = gpu->upload_weight(wbuf, 0, type, rows, cols, w.data());
    DeviceBuffer tb = to_device(*gpu, tokens);
    DeviceBuffer ob = poisoned(*gpu, ref.size());
    gpu->embed(dw, tb.as<int32_t>(), static_cast<int64_t>(tokens.size()), ob.as<float>());
    const std::vector<float> out = from_device<float>(*gpu, ob, ref.size());
    EXPECT_EQ(0, std::memcmp(out.data(), ref.data(), ref.size() * sizeof(float)));
  }
}

TEST(CudaOps, RmsNormAddSwigluMatchReference) {
  LW_REQUIRE_GPU();
  auto gpu = test::cuda_backend(false, false);
  CpuBackend cpu(1);
  for (int64_t dim : {1, 7, 256, 1001, 4096}) {
    for (int64_t rows : {1, 3, 9}) {
      SCOPED_TRACE("dim=" + std::to_string(dim) + " rows=" + std::to_string(rows));
      const size_t n = static_cast<size_t>(dim * rows);
      const std::vector<float> x = randn(n, 1), g = randn(static_cast<size_t>(dim), 2);
      const std::vector<float> b = randn(n, 3, 3.0f);
      std::vector<float> ref(n);
      cpu.rms_norm(x.data(), g.data(), rows, dim, 1e-5f, ref.data());
      DeviceBuffer xb = to_device(*gpu, x), gb = to_device(*gpu, g), bb = to_device(*gpu, b);
      DeviceBuffer yb = poisoned(*gpu, n);
      gpu->rms_norm(xb.as<float>(), gb.as<float>(), rows, dim, 1e-5f, yb.as<float>());
      EXPECT_LE(norm_err(from_device<float>(*gpu, yb, n), ref), 1e-5) << "rms_norm";
      // In place (y aliases x).
      gpu->rms_norm(xb.as<float>(), gb.as<float>(), rows, dim, 1e-5f, xb.as<float>());
      EXPECT_LE(norm_err(from_device<float>(*gpu, xb, n), ref), 1e-5) << "rms_norm in place";

      cpu.add(x.data(), b.data(), static_cast<int64_t>(n), ref.data());
      DeviceBuffer xb2 = to_device(*gpu, x);
      yb = poisoned(*gpu, n);
      gpu->add(xb2.as<float>(), bb.as<float>(), static_cast<int64_t>(n), yb.as<float>());
      EXPECT_LE(norm_err(from_device<float>(*gpu, yb, n), ref), 1e-6) << "add";

      cpu.swiglu(x.data(), b.data(), static_cast<int64_t>(n), ref.data());
      yb = poisoned(*gpu, n);
      gpu->swiglu(xb2.as<float>(), bb.as<float>(), static_cast<int64_t>(n), yb.as<float>());
      EXPECT_LE(norm_err(from_device<float>(*gpu, yb, n), ref), 1e-5) << "swiglu";
    }
  }
}

TEST(CudaOps, RopeMatchesReferenceBothModes) {
  LW_REQUIRE_GPU();
  auto gpu = test::cuda_backend(false, false);
  CpuBackend cpu(1);
  for (RopeMode mode : {RopeMode::AdjacentPair, RopeMode::RotateHalf}) {
    for (int64_t hd : {2, 32, 96, 128}) {
      const int64_t n_tok = 5, n_heads = 3, stride = n_heads * hd + 6;  // padded rows
      SCOPED_TRACE("hd=" + std::to_string(hd) + " mode=" + std::to_string(int(mode)));
      std::vector<float> x = randn(static_cast<size_t>(n_tok * stride), 9);
      const std::vector<int32_t> pos = {0, 1, 77, 4095, 30000};
      std::vector<float> ref = x;
      cpu.rope(ref.data(), n_tok, stride, n_heads, hd, pos.data(), 1e6f, mode);
      DeviceBuffer xb = to_device(*gpu, x), pb = to_device(*gpu, pos);
      gpu->rope(xb.as<float>(), n_tok, stride, n_heads, hd, pb.as<int32_t>(), 1e6f, mode);
      EXPECT_LE(norm_err(from_device<float>(*gpu, xb, x.size()), ref), 1e-5);
    }
  }
}

// A paged KV cache for attention tests: two copies (host for the reference, device for
// the GPU) with the same block tables.
struct KvFixture {
  int32_t n_blocks, n_kv, bs, hd;
  std::vector<uint16_t> host_k, host_v;
  DeviceBuffer dev_k, dev_v;
  KvLayerView host_view() {
    return KvLayerView{host_k.data(), host_v.data(), n_blocks, n_kv, bs, hd};
  }
  KvLayerView dev_view() {
    return KvLayerView{dev_k.as<uint16_t>(), dev_v.as<uint16_t>(), n_blocks, n_kv, bs, hd};
  }
};

// Runs kv_write then attention for `lens` sessions on both sides; each session holds
// positions [0, lens[s]) and the batch queries positions [lens[s] - q_lens[s], lens[s]).
void check_attention(Backend& gpu, int32_t n_heads, int32_t n_kv, int32_t hd, int32_t bs,
                     const std::vector<int32_t>& lens, const std::vector<int32_t>& q_lens,
                     uint32_t seed, bool twice = false) {
  SCOPED_TRACE("heads=" + std::to_string(n_heads) + "/" + std::to_string(n_kv) +
               " hd=" + std::to_string(hd) + " bs=" + std::to_string(bs) +
               " len0=" + std::to_string(lens[0]));
  // Block tables: sessions' blocks interleaved and reversed so they are not contiguous.
  std::vector<std::vector<int32_t>> tables(lens.size());
  int32_t n_blocks = 0;
  for (size_t s = 0; s < lens.size(); ++s) n_blocks += (lens[s] + bs - 1) / bs;
  std::vector<int32_t> ids(static_cast<size_t>(n_blocks));
  std::iota(ids.rbegin(), ids.rend(), 0);
  size_t next = 0;
  for (size_t s = 0; s < lens.size(); ++s) {
    for (int32_t b = 0; b < (lens[s] + bs - 1) / bs; ++b) tables[s].push_back(ids[next++]);
  }
  KvFixture f{n_blocks, n_kv, bs, hd, {}, {}, {}, {}};
  const size_t pool = static_cast<size_t>(n_blocks) * n_kv * bs * hd;
  f.host_k.assign(pool, 0x7e00);  // f16 NaN: slots never written stay NaN
  f.host_v.assign(pool, 0x7e00);
  f.dev_k = to_device(gpu, f.host_k);
  f.dev_v = to_device(gpu, f.host_v);

  // Metadata of a batch of every position of every session (for kv_write), and of the
  // queried tail positions (for attention).
  auto make_meta = [&](bool tail) {
    std::vector<int32_t> pos, offs, tbl;
    for (size_t s = 0; s < lens.size(); ++s) {
      const int32_t off = static_cast<int32_t>(tbl.size());
      for (int32_t p = tail ? lens[s] - q_lens[s] : 0; p < lens[s]; ++p) {
        pos.push_back(p);
        offs.push_back(off);
      }
      tbl.insert(tbl.end(), tables[s].begin(), tables[s].end());
    }
    return std::vector<std::vector<int32_t>>{pos, offs, tbl};
  };
  const int64_t kv_dim = static_cast<int64_t>(n_kv) * hd;
  {
    const auto meta = make_meta(false);
    const int32_t n = static_cast<int32_t>(meta[0].size());
    const std::vector<float> k = randn(static_cast<size_t>(n * kv_dim), seed);
    const std::vector<float> v = randn(static_cast<size_t>(n * kv_dim), seed + 1);
    AttentionBatch hb{n, *std::max_element(meta[0].begin(), meta[0].end()), meta[0].data(),
                      meta[1].data(), meta[2].data()};
    kv_write_ref(f.host_view(), hb, k.data(), v.data());
    DeviceBuffer pb = to_device(gpu, meta[0]), ob = to_device(gpu, meta[1]);
    DeviceBuffer tb = to_device(gpu, meta[2]);
    DeviceBuffer kb = to_device(gpu, k), vb = to_device(gpu, v);
    AttentionBatch db = hb;
    db.positions = pb.as<int32_t>();
    db.table_offsets = ob.as<int32_t>();
    db.block_tables = tb.as<int32_t>();
    gpu.kv_write(f.dev_view(), db, kb.as<float>(), vb.as<float>());
    EXPECT_EQ(from_device<uint16_t>(gpu, f.dev_k, pool), f.host_k) << "K cache differs";
    EXPECT_EQ(from_device<uint16_t>(gpu, f.dev_v, pool), f.host_v) << "V cache differs";
  }
  const auto meta = make_meta(true);
  const int32_t n = static_cast<int32_t>(meta[0].size());
  const std::vector<float> q = randn(static_cast<size_t>(n) * n_heads * hd, seed + 2);
  AttentionBatch hb{n, *std::max_element(meta[0].begin(), meta[0].end()), meta[0].data(),
                    meta[1].data(), meta[2].data()};
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> ref(q.size());
  attention_ref(f.host_view(), hb, q.data(), n_heads, scale, ref.data());
  DeviceBuffer pb = to_device(gpu, meta[0]), ob = to_device(gpu, meta[1]);
  DeviceBuffer tb = to_device(gpu, meta[2]), qb = to_device(gpu, q);
  DeviceBuffer outb = poisoned(gpu, q.size());
  AttentionBatch db = hb;
  db.positions = pb.as<int32_t>();
  db.table_offsets = ob.as<int32_t>();
  db.block_tables = tb.as<int32_t>();
  gpu.attention(f.dev_view(), db, qb.as<float>(), n_heads, scale, outb.as<float>());
  const std::vector<float> first = from_device<float>(gpu, outb, q.size());
  EXPECT_LE(norm_err(first, ref), 1e-4);
  if (twice) {
    // Same batch again: the split counters must be back at zero and the merge order fixed,
    // so the bytes are identical.
    DeviceBuffer out2 = poisoned(gpu, q.size());
    gpu.attention(f.dev_view(), db, qb.as<float>(), n_heads, scale, out2.as<float>());
    const std::vector<float> second = from_device<float>(gpu, out2, q.size());
    EXPECT_EQ(0, std::memcmp(first.data(), second.data(), first.size() * sizeof(float)))
        << "second run differs";
  }
}

TEST(CudaAttention, EveryGqaRatioAndHeadDim) {
  LW_REQUIRE_GPU();
  auto gpu = test::cuda_backend(false, false);
  uint32_t seed = 1;
  // GQA ratios 1, 2, 4, 8 and 32 (more query heads per KV head than one block serves).
  for (const auto& [h, kvh] : std::vector<std::pair<int, int>>{
           {8, 8}, {8, 4}, {8, 2}, {8, 1}, {32, 8}, {32, 1}, {12, 3}}) {
    for (int hd : {32, 40, 128}) {
      check_attention(*gpu, h, kvh, hd, 16, {37, 5}, {37, 1}, seed++);
    }
  }
  check_attention(*gpu, 8, 2, 256, 16, {19}, {3}, seed++);
  check_attention(*gpu, 4, 1, 512, 7, {9}, {9}, seed++);  // largest head_dim, odd block size
}

TEST(CudaAttention, LongContextsSplitAndMerge) {
  LW_REQUIRE_GPU();
  auto gpu = test::cuda_backend(false, false);
  // Decode at long positions (several context splits), batched with a short session.
  check_attention(*gpu, 32, 8, 128, 16, {3001, 2}, {1, 2}, 11);
  check_attention(*gpu, 8, 2, 64, 256, {1537}, {4}, 12);
  // A 300-token prefill of one session.
  check_attention(*gpu, 8, 4, 128, 16, {300}, {300}, 13);
}

// Decode batches (1..8 tokens of 1..3 sessions) around the split and tile edges (32 keys
// per split at least, 64 per shared-memory tile) up to long contexts, for the one-launch
// kernel (attention_decode.h; LW_CUDA_ATTN_V2=0 runs the old kernels through the same cases).
TEST(CudaAttention, DecodeContextsGqaHeadDimsBlockSizes) {
  LW_REQUIRE_GPU();
  auto gpu = test::cuda_backend(false, false);
  uint32_t seed = 1000;
  for (int32_t ctx : {1, 31, 32, 33, 130, 1000, 5000}) {
    for (const auto& [h, kvh] : std::vector<std::pair<int, int>>{{8, 8}, {32, 8}, {8, 1}}) {
      for (int32_t hd : {32, 64, 128}) {
        for (int32_t bs : {1, 16}) {
          // One session, one token.
          check_attention(*gpu, h, kvh, hd, bs, {ctx}, {1}, seed++);
          // Three sessions, 8 tokens: short tails of different lengths.
          const int32_t b = std::max(1, ctx / 3), c = ctx + 2;
          check_attention(*gpu, h, kvh, hd, bs, {ctx, b, c},
                          {1, std::min(b, 2), std::min(c, 5)}, seed++);
        }
      }
    }
  }
}

TEST(CudaAttention, SameBatchTwiceGivesIdenticalBytes) {
  LW_REQUIRE_GPU();
  auto gpu = test::cuda_backend(false, false);
  // Several splits (counters used and reset) for decode, a mixed batch and a long context.
  check_attention(*gpu, 32, 8, 128, 16, {130, 40}, {1, 1}, 2000, true);
  check_attention(*gpu, 32, 8, 128, 16, {1000, 7, 300}, {4, 2, 2}, 2001, true);
  check_attention(*gpu, 8, 1, 64, 1, {5000}, {8}, 2002, true);
  check_attention(*gpu, 8, 2, 128, 16, {200, 100}, {20, 30}, 2003, true);  // 50 tokens
}

TEST(CudaAttention, V2EnvironmentSwitchParsing) {
  EXPECT_TRUE(cuda::parse_attention_v2_env(nullptr));
  EXPECT_TRUE(cuda::parse_attention_v2_env(""));
  EXPECT_TRUE(cuda::parse_attention_v2_env("1"));
  EXPECT_FALSE(cuda::parse_attention_v2_env("0"));
  for (const char* bad : {"yes", "2", "01", " 0"}) {
    try {
      cuda::parse_attention_v2_env(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCliArgument);
      EXPECT_NE(std::string(e.what()).find("LW_CUDA_ATTN_V2"), std::string::npos);
    }
  }
}

// Host-only: which kernel a plan selects, and that the plan covers the context and sizes
// its workspace (counters + partials) for the grid it implies.
TEST(CudaAttention, V2PlanCoversContextAndWorkspace) {
  auto* k = reinterpret_cast<uint16_t*>(uintptr_t{0x10000});
  auto* v = reinterpret_cast<uint16_t*>(uintptr_t{0x20000});
  const bool enabled = cuda::attention_v2_enabled_from_env();
  for (int32_t hd : {32, 40, 128, 256}) {
    const KvLayerView kv{k, v, 10, 8, 16, hd};
    for (int32_t n_tok : {1, 8, 16, 300}) {
      for (int32_t max_pos : {0, 255, 1023, 32767}) {
        SCOPED_TRACE("hd=" + std::to_string(hd) + " n_tok=" + std::to_string(n_tok) +
                     " max_pos=" + std::to_string(max_pos));
        const cuda::AttentionPlan p = cuda::attention_plan(n_tok, max_pos, 32, kv, 132);
        EXPECT_EQ(p.v2, enabled && hd <= 128);
        EXPECT_GE(static_cast<int64_t>(p.split_len) * p.n_splits, max_pos + 1);
        EXPECT_LT(static_cast<int64_t>(p.split_len) * (p.n_splits - 1), max_pos + 1);
        EXPECT_EQ(p.split_len % 32, 0);
        if (p.v2) EXPECT_LE(p.n_splits, 256);
        if (p.v2 && p.n_splits > 1) {
          EXPECT_GE(p.counter_bytes, static_cast<size_t>(n_tok) * 8 * sizeof(unsigned));
          EXPECT_GE(p.workspace_bytes, p.counter_bytes + static_cast<size_t>(n_tok) * 32 *
                                                             p.n_splits * (hd + 2) * sizeof(float));
        }
        if (p.n_splits == 1) EXPECT_EQ(p.workspace_bytes, 0u);
      }
    }
  }
  // A huge device and one KV head: the split count stays bounded (merge weights in smem).
  const cuda::AttentionPlan big = cuda::attention_plan(1, 32767, 8, KvLayerView{k, v, 10, 1, 16, 128}, 10000);
  if (big.v2) EXPECT_LE(big.n_splits, 256);
  KvLayerView mis{k + 4, v, 10, 8, 16, 128};  // 8-byte aligned K: the old kernels
  EXPECT_FALSE(cuda::attention_plan(1, 255, 32, mis, 132).v2);
}

}  // namespace
}  // namespace lw
