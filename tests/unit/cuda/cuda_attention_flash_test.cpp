// The tensor-core prefill attention (kernels/cuda/attention_flash.h) against the CPU
// reference attention_ref (double) and against the old split kernel on the same inputs, on
// random Q/K/V over a paged cache whose never-written slots hold f16 NaN, outputs
// NaN-poisoned first. Bound (normalized error ||gpu - ref|| / ||ref||): 1e-4, the old
// kernel's bound in cuda_ops_test.cpp, for every case (flash: Q and P as hi + lo f16 planes,
// expected ~1e-6); flash vs old kernel: 1e-4. Host-only tests: LW_CUDA_FLASH_ATTN parsing and
// the eligibility rule; the dispatch from cuda::attention() is observed with the launch count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_flash.h"
#include "kernels/cuda/cuda_device.h"
#include "tests/unit/cuda/cuda_test_util.h"

namespace lw {
namespace {

using cuda::GpuBuffer;
using test::norm_err;
using test::randn;

// One session of a test batch: positions [0, start) are cached context, the batch queries
// [start, start + n_tok).
struct Sess {
  int32_t start, n_tok;
};

struct Case {
  int32_t n_heads, n_kv, hd, bs;
  std::vector<Sess> sessions;
  bool interleave = false;  // batch tokens round-robin over the sessions (else in order)
  std::string str() const {
    std::string s = "heads=" + std::to_string(n_heads) + "/" + std::to_string(n_kv) +
                    " hd=" + std::to_string(hd) + " bs=" + std::to_string(bs) + " sessions=";
    for (const Sess& x : sessions) s += "[" + std::to_string(x.start) + "+" + std::to_string(x.n_tok) + "]";
    return s + (interleave ? " interleaved" : "");
  }
};

template <typename T>
GpuBuffer upload(const std::vector<T>& v) {
  GpuBuffer b(std::max<size_t>(1, v.size()) * sizeof(T));
  if (!v.empty()) cuda::copy_to_device(b.get(), v.data(), v.size() * sizeof(T));
  return b;
}
std::vector<float> download(const GpuBuffer& b, size_t n) {
  std::vector<float> v(n);
  cuda::copy_to_host(v.data(), b.get(), n * sizeof(float));
  return v;
}
GpuBuffer poisoned(size_t n) {
  GpuBuffer b(n * sizeof(float));
  cuda::dev_fill_bytes(b.get(), 0xff, n * sizeof(float));  // all-ones f32 = NaN
  return b;
}

// A paged cache holding every session's positions, the batch metadata and Q, on both sides.
struct FlashSetup {
  Case c;
  int32_t n = 0, max_pos = 0;
  std::vector<uint16_t> k, v;
  std::vector<int32_t> pos, offs, tbl;
  std::vector<float> q;
  GpuBuffer dk, dv, dpos, doffs, dtbl, dq;

  FlashSetup(const Case& cs, uint32_t seed, float q_scale = 1.0f) : c(cs) {
    // Blocks of all sessions interleaved and in reverse order (never contiguous).
    std::vector<int32_t> need;
    int32_t n_blocks = 0;
    for (const Sess& s : c.sessions) {
      need.push_back((s.start + s.n_tok + c.bs - 1) / c.bs);
      n_blocks += need.back();
    }
    std::vector<std::vector<int32_t>> tables(c.sessions.size());
    int32_t id = n_blocks - 1;
    for (int32_t b = 0; id >= 0; ++b) {
      for (size_t s = 0; s < tables.size(); ++s) {
        if (b < need[s]) tables[s].push_back(id--);
      }
    }
    const size_t pool = static_cast<size_t>(n_blocks) * c.n_kv * c.bs * c.hd;
    k.assign(pool, 0x7e00);  // f16 NaN: a slot read without being written poisons the output
    v.assign(pool, 0x7e00);
    const KvLayerView view = host_view();
    const std::vector<float> rk = randn(pool, seed), rv = randn(pool, seed + 1);
    std::vector<int32_t> table_off;
    for (size_t s = 0; s < tables.size(); ++s) {
      table_off.push_back(static_cast<int32_t>(tbl.size()));
      tbl.insert(tbl.end(), tables[s].begin(), tables[s].end());
      const int32_t len = c.sessions[s].start + c.sessions[s].n_tok;
      for (int32_t p = 0; p < len; ++p) {
        for (int32_t h = 0; h < c.n_kv; ++h) {
          const int64_t off = view.offset(tables[s][p / c.bs], h, p % c.bs);
          for (int32_t i = 0; i < c.hd; ++i) {
            k[off + i] = fp32_to_fp16(rk[off + i]);
            v[off + i] = fp32_to_fp16(rv[off + i]);
          }
        }
      }
    }
    // Batch tokens.
    std::vector<int32_t> next(c.sessions.size(), 0);
    for (bool more = true; more;) {
      more = false;
      for (size_t s = 0; s < c.sessions.size(); ++s) {
        const int32_t take = c.interleave ? 1 : c.sessions[s].n_tok;
        for (int32_t i = 0; i < take && next[s] < c.sessions[s].n_tok; ++i, ++next[s]) {
          pos.push_back(c.sessions[s].start + next[s]);
          offs.push_back(table_off[s]);
        }
        more = more || next[s] < c.sessions[s].n_tok;
      }
    }
    n = static_cast<int32_t>(pos.size());
    max_pos = *std::max_element(pos.begin(), pos.end());
    q = randn(static_cast<size_t>(n) * c.n_heads * c.hd, seed + 2, q_scale);
    dk = upload(k);
    dv = upload(v);
    dpos = upload(pos);
    doffs = upload(offs);
    dtbl = upload(tbl);
    dq = upload(q);
  }
  int32_t n_blocks() const {
    return static_cast<int32_t>(k.size() / (static_cast<size_t>(c.n_kv) * c.bs * c.hd));
  }
  KvLayerView host_view() {
    return KvLayerView{k.data(), v.data(), n_blocks(), c.n_kv, c.bs, c.hd};
  }
  KvLayerView dev_view() const {
    return KvLayerView{dk.as<uint16_t>(), dv.as<uint16_t>(), n_blocks(), c.n_kv, c.bs, c.hd};
  }
  AttentionBatch dev_batch(bool one_run) const {
    AttentionBatch b{n, max_pos, dpos.as<int32_t>(), doffs.as<int32_t>(), dtbl.as<int32_t>()};
    b.one_session_run = one_run;
    return b;
  }
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(c.hd)); }
  size_t out_elems() const { return q.size(); }
  std::vector<float> reference() {
    AttentionBatch hb{n, max_pos, pos.data(), offs.data(), tbl.data()};
    std::vector<float> ref(q.size());
    attention_ref(host_view(), hb, q.data(), c.n_heads, scale(), ref.data());
    return ref;
  }
  // The flash kernel called directly (one_session_run as given: tests of the device check
  // pass a wrong flag on purpose).
  std::vector<float> flash(bool one_run = true) const {
    GpuBuffer out = poisoned(out_elems());
    cuda::flash_attention(dev_view(), dev_batch(one_run), dq.as<float>(), c.n_heads, scale(),
                          out.as<float>(), nullptr);
    cuda::device_synchronize("flash test");
    return download(out, out_elems());
  }
  // cuda::attention() (the dispatcher) with the batch flag `one_run`.
  std::vector<float> dispatched(bool one_run) const {
    const cuda::DeviceInfo info = cuda::device_info(0);
    const cuda::AttentionPlan plan =
        cuda::attention_plan(n, max_pos, c.n_heads, dev_view(), info.sm_count);
    GpuBuffer ws(std::max<size_t>(1, plan.workspace_bytes));
    cuda::dev_fill_bytes(ws.get(), 0, ws.size());  // v2 counters start at zero
    GpuBuffer out = poisoned(out_elems());
    cuda::attention(dev_view(), dev_batch(one_run), dq.as<float>(), c.n_heads, scale(),
                    out.as<float>(), plan, ws.get(), ws.size(), nullptr);
    cuda::device_synchronize("attention test");
    return download(out, out_elems());
  }
};

constexpr double kBound = 1e-4;

// Flash vs reference and vs the old kernel (one_session_run = false forces it).
void check_flash(const Case& c, uint32_t seed) {
  SCOPED_TRACE(c.str());
  FlashSetup s(c, seed);
  const std::vector<float> ref = s.reference();
  const std::vector<float> fl = s.flash();
  const double e_ref = norm_err(fl, ref);
  EXPECT_LE(e_ref, kBound) << "flash vs attention_ref";
  const std::vector<float> old = s.dispatched(false);
  EXPECT_LE(norm_err(old, ref), kBound) << "old kernel vs attention_ref";
  EXPECT_LE(norm_err(fl, old), kBound) << "flash vs old kernel";
  std::printf("[flash] %s: err vs ref %.3g, vs old %.3g\n", c.str().c_str(), e_ref,
              norm_err(fl, old));
}

TEST(CudaFlashAttention, MatchesReferenceOddTokenCounts) {
  LW_REQUIRE_GPU();
  uint32_t seed = 1;
  for (int32_t n_tok : {17, 64, 65, 200}) {
    check_flash({32, 8, 128, 16, {{0, n_tok}}}, seed += 3);   // mistral: GQA 4
  }
}

TEST(CudaFlashAttention, StartPositionsAfterCachedContext) {
  LW_REQUIRE_GPU();
  uint32_t seed = 100;
  check_flash({8, 2, 128, 16, {{1, 16}}}, seed += 3);
  check_flash({8, 2, 128, 16, {{37, 65}}}, seed += 3);
  check_flash({8, 8, 64, 16, {{63, 70}}}, seed += 3);
  check_flash({8, 1, 64, 16, {{64, 64}}}, seed += 3);
  check_flash({8, 2, 32, 16, {{130, 17}}}, seed += 3);
  check_flash({32, 8, 128, 16, {{300, 129}}}, seed += 3);
}

TEST(CudaFlashAttention, BlockSizesAndGqaRatios) {
  LW_REQUIRE_GPU();
  uint32_t seed = 200;
  for (int32_t bs : {1, 5, 16, 64}) {
    for (const auto& [h, kvh] : std::vector<std::pair<int32_t, int32_t>>{{4, 4}, {8, 2}, {16, 2}}) {
      for (int32_t hd : {32, 64, 128}) {
        check_flash({h, kvh, hd, bs, {{bs == 5 ? 9 : 0, 33}}}, seed += 3);
      }
    }
  }
}

TEST(CudaFlashAttention, TinyPresetShapes) {
  LW_REQUIRE_GPU();
  // fragments/synth.h: tiny and tiny-magistral are 8 heads, 2 KV heads, head_dim 32.
  check_flash({8, 2, 32, 16, {{0, 70}}}, 300);
  check_flash({8, 2, 32, 16, {{9, 81}}}, 303);
}

// A batch of two interleaved sessions: the dispatcher must not take the flash kernel
// (flag false), and when the flag is wrongly set the kernel's device check must route
// every bad tile through its scalar path. Both must match the reference.
TEST(CudaFlashAttention, IneligibleBatchesStillMatchReference) {
  LW_REQUIRE_GPU();
  const Case interleaved{8, 2, 64, 16, {{5, 40}, {0, 37}}, true};
  SCOPED_TRACE(interleaved.str());
  FlashSetup s(interleaved, 400);
  const std::vector<float> ref = s.reference();
  const uint64_t before = cuda::flash_attention_launch_count();
  EXPECT_LE(norm_err(s.dispatched(false), ref), kBound) << "dispatcher, flag false";
  EXPECT_EQ(cuda::flash_attention_launch_count(), before) << "flash taken without the flag";
  EXPECT_LE(norm_err(s.flash(true), ref), kBound) << "flash with a wrong flag";

  // Two sessions one after the other: tile 0 is all session A, tile 1 starts with A's last
  // tokens and ends with B's (mixed tile -> scalar path), tile 2 is B's alone.
  for (int32_t hd : {32, 128}) {
    const Case seq{16, 2, hd, 5, {{3, 100}, {20, 80}}, false};
    SCOPED_TRACE(seq.str());
    FlashSetup t(seq, 410 + hd);
    EXPECT_LE(norm_err(t.flash(true), t.reference()), kBound) << "flash, mixed tiles";
  }
}

// |q| * scale * log2(e) far beyond f16's range: the hi plane would be infinite (NaN output),
// so every tile must take the f32 scalar path and still match the reference.
TEST(CudaFlashAttention, HugeQueriesTakeTheScalarPath) {
  LW_REQUIRE_GPU();
  FlashSetup s({8, 2, 64, 16, {{3, 40}}}, 600, 1e6f);
  EXPECT_LE(norm_err(s.flash(), s.reference()), kBound);
}

TEST(CudaFlashAttention, DispatcherSelectsFlashForOneSessionPrefill) {
  LW_REQUIRE_GPU();
  FlashSetup s({32, 8, 128, 16, {{10, 100}}}, 500);
  const std::vector<float> ref = s.reference();
  const bool enabled = cuda::flash_attention_enabled_from_env();
  const uint64_t before = cuda::flash_attention_launch_count();
  EXPECT_LE(norm_err(s.dispatched(true), ref), kBound);
  EXPECT_EQ(cuda::flash_attention_launch_count(), before + (enabled ? 1 : 0))
      << "LW_CUDA_FLASH_ATTN enabled=" << enabled;
  // Below kFlashMinTokens (decode) the old kernel stays.
  FlashSetup d({32, 8, 128, 16, {{200, cuda::kFlashMinTokens - 1}}}, 501);
  const uint64_t before_d = cuda::flash_attention_launch_count();
  EXPECT_LE(norm_err(d.dispatched(true), d.reference()), kBound);
  EXPECT_EQ(cuda::flash_attention_launch_count(), before_d);
}

TEST(CudaFlashAttention, EnvironmentSwitchParsing) {
  EXPECT_TRUE(cuda::parse_flash_attention_env(nullptr));
  EXPECT_TRUE(cuda::parse_flash_attention_env(""));
  EXPECT_TRUE(cuda::parse_flash_attention_env("1"));
  EXPECT_FALSE(cuda::parse_flash_attention_env("0"));
  for (const char* bad : {"yes", "2", "01", " 0"}) {
    try {
      cuda::parse_flash_attention_env(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCliArgument);
      EXPECT_NE(std::string(e.what()).find("LW_CUDA_FLASH_ATTN"), std::string::npos);
    }
  }
}

TEST(CudaFlashAttention, EligibilityRuleOnHost) {
  // Only addresses are inspected: fake, suitably aligned device addresses.
  auto* k = reinterpret_cast<uint16_t*>(uintptr_t{0x10000});
  auto* v = reinterpret_cast<uint16_t*>(uintptr_t{0x20000});
  const auto* q = reinterpret_cast<const float*>(uintptr_t{0x30000});
  auto* out = reinterpret_cast<float*>(uintptr_t{0x40000});
  const KvLayerView kv{k, v, 10, 8, 16, 128};
  AttentionBatch b;
  b.n_tokens = 512;
  b.max_position = 511;
  b.one_session_run = true;
  EXPECT_TRUE(cuda::flash_attention_eligible(kv, b, 32, q, out, true));
  EXPECT_FALSE(cuda::flash_attention_eligible(kv, b, 32, q, out, false)) << "env off";
  for (int32_t hd : {32, 64}) {
    KvLayerView x = kv;
    x.head_dim = hd;
    EXPECT_TRUE(cuda::flash_attention_eligible(x, b, 32, q, out, true)) << hd;
  }
  for (int32_t hd : {40, 96, 256}) {
    KvLayerView x = kv;
    x.head_dim = hd;
    EXPECT_FALSE(cuda::flash_attention_eligible(x, b, 32, q, out, true)) << hd;
  }
  AttentionBatch nb = b;
  nb.one_session_run = false;
  EXPECT_FALSE(cuda::flash_attention_eligible(kv, nb, 32, q, out, true)) << "no flag";
  nb = b;
  nb.n_tokens = cuda::kFlashMinTokens - 1;
  EXPECT_FALSE(cuda::flash_attention_eligible(kv, nb, 32, q, out, true)) << "decode size";
  nb.n_tokens = cuda::kFlashMinTokens;
  EXPECT_TRUE(cuda::flash_attention_eligible(kv, nb, 32, q, out, true)) << "16 tokens";
  EXPECT_FALSE(cuda::flash_attention_eligible(kv, b, 30, q, out, true)) << "30 % 8 heads";
  KvLayerView mis = kv;
  mis.k = k + 4;  // 8-byte offset
  EXPECT_FALSE(cuda::flash_attention_eligible(mis, b, 32, q, out, true)) << "misaligned K";
  EXPECT_FALSE(cuda::flash_attention_eligible(kv, b, 32, q + 1, out, true)) << "misaligned q";
}

}  // namespace
}  // namespace lw
