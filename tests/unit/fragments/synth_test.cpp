#include "fragments/synth.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "fragments/arch.h"
#include "fragments/gguf.h"
#include "fragments/quant.h"
#include "fragments/synth_quant.h"
#include "fragments/synth_vocab.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

std::filesystem::path synth(const test::TempDir& dir, const SynthOptions& options,
                            const std::string& name = "model.gguf") {
  const std::filesystem::path path = dir / name;
  synth_model(options, path);
  return path;
}

std::vector<float> dequantize(const GgufFile& f, const GgufTensorInfo& t) {
  std::vector<float> out(t.n_elements(), std::numeric_limits<float>::quiet_NaN());
  dequantize_row(t.type, f.tensor_data(t), out.data(), static_cast<int64_t>(out.size()));
  return out;
}

uint32_t meta_u32(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  uint64_t out = 0;
  EXPECT_TRUE(v != nullptr && v->get_u64(&out)) << key;
  return static_cast<uint32_t>(out);
}

// The Q4_K_M layers that get Q6_K attn_v / ffn_down, by hand from llama.cpp's rule.
bool more_bits_by_hand(uint32_t n_layers, uint32_t layer) {
  if (n_layers == 8) return layer == 0 || layer == 3 || layer == 6 || layer == 7;
  if (n_layers == 32) {
    const std::set<uint32_t> q6 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    return q6.count(layer) > 0;
  }
  ADD_FAILURE() << "no hand table for " << n_layers << " layers";
  return false;
}

GgmlType expected_type(const std::string& quant, const std::string& name, uint32_t n_layers) {
  const bool norm = name.find("norm") != std::string::npos;
  if (norm || quant == "f32") return GgmlType::F32;
  if (quant == "f16") return GgmlType::F16;
  if (quant == "q8_0") return GgmlType::Q8_0;
  if (name == "output.weight") return GgmlType::Q6_K;
  const int layer = tensor_layer(name);
  if (layer >= 0 &&
      (name.find("attn_v") != std::string::npos || name.find("ffn_down") != std::string::npos)) {
    return more_bits_by_hand(n_layers, layer) ? GgmlType::Q6_K : GgmlType::Q4_K;
  }
  return GgmlType::Q4_K;
}

// Rows that probe the fast encoders: gaussian at two scales, a ramp (any permutation of the
// layout shows), all positive, all zero, and one outlier per super-block.
std::vector<std::vector<float>> probe_rows(int64_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<std::vector<float>> rows(6, std::vector<float>(n));
  for (int64_t i = 0; i < n; ++i) {
    rows[0][i] = 0.02f * gauss(rng);
    rows[1][i] = 3.0f * gauss(rng);
    rows[2][i] = static_cast<float>(i % 256) / 256.0f - 0.3f;
    rows[3][i] = 0.5f + 0.1f * std::fabs(gauss(rng));
    rows[4][i] = 0.0f;
    rows[5][i] = i % 256 == 17 ? -40.0f : 0.01f * gauss(rng);
  }
  return rows;
}

TEST(SynthTest, FastEncodersRoundTripWithinOneStep) {
  constexpr int64_t n = 4 * kQK_K;
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const bool q4 = type == GgmlType::Q4_K;
    int row_index = 0;
    for (const std::vector<float>& x : probe_rows(n)) {
      SCOPED_TRACE(std::string(type_traits(type).name) + " row " + std::to_string(row_index++));
      uint64_t bytes = 0;
      ASSERT_TRUE(row_size(type, n, &bytes));
      std::vector<uint8_t> fast(bytes, 0xA5), ref(bytes, 0xA5);
      if (q4) {
        synth_quantize_q4_k(x.data(), reinterpret_cast<BlockQ4_K*>(fast.data()), n);
      } else {
        synth_quantize_q6_k(x.data(), reinterpret_cast<BlockQ6_K*>(fast.data()), n);
      }
      quantize_row(type, x.data(), ref.data(), n);
      std::vector<float> y(n, std::numeric_limits<float>::quiet_NaN()), yr(n);
      dequantize_row(type, fast.data(), y.data(), n);
      dequantize_row(type, ref.data(), yr.data(), n);
      double err2 = 0, ref_err2 = 0;
      for (int64_t b = 0; b < n; b += kQK_K) {
        float lo = 0, hi = 0, amax = 0;
        for (int64_t i = b; i < b + kQK_K; ++i) {
          lo = std::min(lo, x[i]);
          hi = std::max(hi, x[i]);
          amax = std::max(amax, std::fabs(x[i]));
        }
        // One quantization step of the super-block's widest sub-block (plus f16 slack).
        const float step = (q4 ? (hi - lo) / 15.0f : amax / 32.0f) * 1.01f + 1e-7f;
        for (int64_t i = b; i < b + kQK_K; ++i) {
          ASSERT_LE(std::fabs(y[i] - x[i]), step) << "value " << i << " = " << x[i];
          err2 += double(y[i] - x[i]) * (y[i] - x[i]);
          ref_err2 += double(yr[i] - x[i]) * (yr[i] - x[i]);
        }
      }
      // Coarser than ggml's searched scales, but of the same order.
      EXPECT_LE(std::sqrt(err2), 2.0 * std::sqrt(ref_err2) + 1e-6);
    }
  }
}

TEST(SynthTest, PresetsAndMixesReadBackAndDetect) {
  test::TempDir dir;
  for (const std::string preset : {"tiny", "tiny-magistral"}) {
    for (const std::string quant : {"f32", "f16", "q8_0", "q4_k_m"}) {
      SCOPED_TRACE(preset + " " + quant);
      SynthOptions o;
      o.preset = preset;
      o.quant = quant;
      o.layers = quant == "q4_k_m" ? 8 : -1;  // 8 layers exercise the Q6_K layer rule
      const auto start = std::chrono::steady_clock::now();
      const auto path = synth(dir, o, preset + "-" + quant + ".gguf");
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (preset == "tiny" && quant == "q4_k_m") std::printf("tiny q4_k_m x8: %.3f s\n", seconds);

      const GgufFile f = GgufFile::open(path);
      EXPECT_EQ(f.version(), 3u);
      const SynthShape s = synth_preset(preset);
      const uint32_t n_layers = o.layers > 0 ? static_cast<uint32_t>(o.layers) : s.n_layers;
      const ModelParams p = detect_architecture(f.metadata(), f.tensor_descs());
      EXPECT_EQ(p.preset, "llama-generic");
      EXPECT_EQ(p.n_layers, n_layers);
      EXPECT_EQ(p.dim, s.dim);
      EXPECT_EQ(p.n_heads, s.n_heads);
      EXPECT_EQ(p.n_kv_heads, s.n_kv_heads);
      EXPECT_EQ(p.head_dim, s.head_dim);
      EXPECT_EQ(p.ffn_dim, s.ffn_dim);
      EXPECT_EQ(p.vocab_size, s.vocab_size);
      EXPECT_EQ(p.context_length, s.context_length);
      EXPECT_FLOAT_EQ(p.rope_theta, s.rope_theta);
      EXPECT_FLOAT_EQ(p.norm_eps, s.norm_eps);
      EXPECT_FALSE(p.tied_output);
      EXPECT_EQ(p.tokenizer_model, "llama");
      EXPECT_EQ(f.tensors().size(), 3u + 9u * n_layers);
      const uint32_t ftype = quant == "f32" ? 0 : quant == "f16" ? 1 : quant == "q8_0" ? 7 : 15;
      EXPECT_EQ(meta_u32(f, "general.file_type"), ftype);
      EXPECT_EQ(meta_u32(f, "general.alignment"), 32u);
      EXPECT_EQ(meta_u32(f, "llama.rope.dimension_count"), s.head_dim);
      EXPECT_EQ(meta_u32(f, "llama.vocab_size"), s.vocab_size);
      if (quant == "q4_k_m") {
        EXPECT_EQ(meta_u32(f, "general.quantization_version"), 2u);
      }
      for (const GgufTensorInfo& t : f.tensors()) {
        EXPECT_EQ(t.type, expected_type(quant, t.name, n_layers)) << t.name;
      }
    }
  }
  EXPECT_EQ(synth_preset("tiny-magistral").dim, 512u);
  EXPECT_NE(synth_preset("tiny-magistral").head_dim * synth_preset("tiny-magistral").n_heads,
            synth_preset("tiny-magistral").dim);
}

TEST(SynthTest, Q4KMRuleOnThirtyTwoLayers) {
  test::TempDir dir;
  SynthOptions o;
  o.shape = SynthShape{.dim = 256,
                       .n_layers = 32,
                       .n_heads = 2,
                       .n_kv_heads = 1,
                       .head_dim = 128,
                       .ffn_dim = 256,
                       .vocab_size = 300};
  const GgufFile f = GgufFile::open(synth(dir, o));
  int q6 = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.type, expected_type("q4_k_m", t.name, 32)) << t.name;
    q6 += t.type == GgmlType::Q6_K;
  }
  EXPECT_EQ(q6, 2 * 16 + 1);  // attn_v and ffn_down on 16 layers, plus output
}

TEST(SynthTest, RowsThatDoNotFitTheBlockFallBack) {
  test::TempDir dir;
  SynthOptions o;
  // dim 96 is not a multiple of 256 (K-quants -> Q8_0); ffn 80 not of 32 (Q8_0 -> F16).
  o.shape = SynthShape{.dim = 96,
                       .n_layers = 2,
                       .n_heads = 3,
                       .n_kv_heads = 1,
                       .head_dim = 32,
                       .ffn_dim = 80,
                       .vocab_size = 260};
  const GgufFile f = GgufFile::open(synth(dir, o));
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(f.find_tensor("output.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(f.find_tensor("blk.1.ffn_down.weight")->type, GgmlType::F16);
  EXPECT_EQ(f.find_tensor("blk.1.ffn_norm.weight")->type, GgmlType::F32);
  EXPECT_EQ(detect_architecture(f.metadata(), f.tensor_descs()).dim, 96u);
}

TEST(SynthTest, SeedDeterminesBytes) {
  test::TempDir dir;
  SynthOptions o;
  o.layers = 2;
  const MappedFile a(synth(dir, o, "a.gguf"));
  const MappedFile b(synth(dir, o, "b.gguf"));
  o.seed = 2;
  const MappedFile c(synth(dir, o, "c.gguf"));
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0);
  ASSERT_EQ(a.size(), c.size());  // same layout...
  const GgufFile fa = GgufFile::parse(a.data(), a.size(), "a.gguf");
  const GgufFile fc = GgufFile::parse(c.data(), c.size(), "c.gguf");
  for (size_t i = 0; i < fa.tensors().size(); ++i) {  // ...different weights in every tensor
    const GgufTensorInfo& t = fa.tensors()[i];
    EXPECT_NE(std::memcmp(fa.tensor_data(t), fc.tensor_data(fc.tensors()[i]), t.size), 0) << t.name;
  }
  // Different tensors of one file differ too (no repeated stream).
  const GgufTensorInfo* q = fa.find_tensor("blk.0.attn_q.weight");
  const GgufTensorInfo* q1 = fa.find_tensor("blk.1.attn_q.weight");
  EXPECT_NE(std::memcmp(fa.tensor_data(*q), fa.tensor_data(*q1), q->size), 0);
}

TEST(SynthTest, WeightsAreFiniteWithIntendedSpread) {
  test::TempDir dir;
  for (const std::string quant : {"f32", "f16", "q8_0", "q4_k_m"}) {
    SCOPED_TRACE(quant);
    SynthOptions o;
    o.quant = quant;
    o.layers = 1;
    const auto path = synth(dir, o, quant + ".gguf");
    const GgufFile f = GgufFile::open(path);
    for (const GgufTensorInfo& t : f.tensors()) {
      const std::vector<float> v = dequantize(f, t);
      double sum = 0, sq = 0;
      for (float x : v) {
        ASSERT_TRUE(std::isfinite(x)) << t.name;
        sum += x;
        sq += double{x} * x;
      }
      const double mean = sum / v.size();
      const double std = std::sqrt(sq / v.size() - mean * mean);
      const bool norm = t.name.find("norm") != std::string::npos;
      if (norm) {
        EXPECT_NEAR(mean, 1.0, 0.03) << t.name;
        EXPECT_NEAR(std, 0.1, 0.02) << t.name;
      } else {
        EXPECT_NEAR(mean, 0.0, 0.002) << t.name;
        EXPECT_NEAR(std, 0.02, 0.003) << t.name;  // Q4_K rounding adds a little noise
      }
    }
  }
}

TEST(SynthTest, TokenizerArraysAreConsistent) {
  test::TempDir dir;
  SynthOptions o;
  o.layers = 1;
  const GgufFile f = GgufFile::open(synth(dir, o));
  const uint32_t vocab = synth_preset("tiny").vocab_size;
  const GgufArray* tokens = f.find("tokenizer.ggml.tokens")->get_array();
  const GgufArray* scores = f.find("tokenizer.ggml.scores")->get_array();
  const GgufArray* types = f.find("tokenizer.ggml.token_type")->get_array();
  ASSERT_TRUE(tokens && scores && types);
  EXPECT_EQ(tokens->elem_type, GgufValueType::STRING);
  EXPECT_EQ(scores->elem_type, GgufValueType::FLOAT32);
  EXPECT_EQ(types->elem_type, GgufValueType::INT32);
  ASSERT_EQ(tokens->items.size(), vocab);
  ASSERT_EQ(scores->items.size(), vocab);
  ASSERT_EQ(types->items.size(), vocab);
  EXPECT_EQ(*f.find("tokenizer.ggml.model")->get_string(), "llama");
  EXPECT_EQ(meta_u32(f, "tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(meta_u32(f, "tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(meta_u32(f, "tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_EQ(std::get<bool>(f.find("tokenizer.ggml.add_bos_token")->value), true);
  EXPECT_EQ(std::get<bool>(f.find("tokenizer.ggml.add_eos_token")->value), false);

  std::set<std::string> seen;
  for (uint32_t i = 0; i < vocab; ++i) {
    const std::string& tok = *tokens->items[i].get_string();
    int64_t type = 0;
    ASSERT_TRUE(types->items[i].get_i64(&type));
    double score = 0;
    ASSERT_TRUE(scores->items[i].get_f64(&score));
    EXPECT_TRUE(seen.insert(tok).second) << "duplicate piece " << tok;
    EXPECT_TRUE(std::isfinite(score));
    EXPECT_LE(score, 0.0);
    if (i == 0) {
      EXPECT_EQ(tok, "<unk>");
      EXPECT_EQ(type, 2);
    } else if (i <= 2) {
      EXPECT_EQ(tok, i == 1 ? "<s>" : "</s>");
      EXPECT_EQ(type, 3);
    } else if (i < 259) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "<0x%02X>", i - 3);
      EXPECT_EQ(tok, hex);
      EXPECT_EQ(type, 6);
    } else {
      EXPECT_EQ(type, 1) << tok;
      EXPECT_EQ(tok.find(' '), std::string::npos) << "spaces are written as U+2581";
    }
  }
  EXPECT_TRUE(seen.count("\xE2\x96\x81the"));  // "▁the"
  EXPECT_TRUE(seen.count("a"));
}

TEST(SynthTest, VocabularyIsPrefixClosedAndScoresLongerPiecesHigher) {
  for (uint32_t size : {512u, 32768u, 131072u}) {
    SCOPED_TRACE(size);
    const SynthVocab v = synth_vocab(size);
    ASSERT_EQ(v.tokens.size(), size);
    ASSERT_EQ(v.scores.size(), size);
    ASSERT_EQ(v.types.size(), size);
    std::set<std::string> pieces(v.tokens.begin(), v.tokens.end());
    EXPECT_EQ(pieces.size(), size) << "pieces are unique";
    for (uint32_t i = kSynthFirstPiece; i < size; ++i) {
      const std::string& t = v.tokens[i];
      size_t cut = t.size() - 1;
      while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;
      if (cut == 0) continue;  // a single character
      const std::string prefix = t.substr(0, cut);
      ASSERT_TRUE(pieces.count(prefix)) << t << " lacks its prefix " << prefix;
    }
  }
  const SynthVocab v = synth_vocab(512);
  auto score = [&](const std::string& piece) {
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (v.tokens[i] == piece) return v.scores[i];
    }
    ADD_FAILURE() << piece << " not in the vocabulary";
    return 0.0f;
  };
  EXPECT_GT(score("\xE2\x96\x81the"), score("\xE2\x96\x81th"));
  EXPECT_GT(score("\xE2\x96\x81th"), score("\xE2\x96\x81t"));
  EXPECT_GT(score("\xE2\x96\x81t"), score("t"));
}

TEST(SynthTest, ProgressAndVersion) {
  test::TempDir dir;
  SynthOptions o;
  o.layers = 1;
  o.gguf_version = 2;
  uint64_t last = 0, total = 0;
  int calls = 0;
  o.progress = [&](uint64_t done, uint64_t all) {
    EXPECT_GE(done, last);
    last = done;
    total = all;
    ++calls;
  };
  const GgufFile f = GgufFile::open(synth(dir, o));
  EXPECT_EQ(f.version(), 2u);
  uint64_t bytes = 0;
  for (const GgufTensorInfo& t : f.tensors()) bytes += t.size;
  EXPECT_GT(calls, 1);
  EXPECT_EQ(total, bytes);
  EXPECT_EQ(last, bytes);
}

TEST(SynthTest, BigPresetsHaveTheDesignShapes) {
  const SynthShape m = synth_preset("mistral-7b");
  EXPECT_EQ(m.dim, 4096u);
  EXPECT_EQ(m.n_layers, 32u);
  EXPECT_EQ(m.n_heads, 32u);
  EXPECT_EQ(m.n_kv_heads, 8u);
  EXPECT_EQ(m.head_dim, 128u);
  EXPECT_EQ(m.ffn_dim, 14336u);
  EXPECT_EQ(m.vocab_size, 32768u);
  EXPECT_FLOAT_EQ(m.rope_theta, 1.0e6f);
  const SynthShape g = synth_preset("magistral-small");
  EXPECT_EQ(g.dim, 5120u);
  EXPECT_EQ(g.n_layers, 40u);
  EXPECT_EQ(g.n_heads, 32u);
  EXPECT_EQ(g.n_kv_heads, 8u);
  EXPECT_EQ(g.head_dim, 128u);
  EXPECT_EQ(g.ffn_dim, 32768u);
  EXPECT_EQ(g.vocab_size, 131072u);
  EXPECT_FLOAT_EQ(g.rope_theta, 1.0e9f);
}

TEST(SynthTest, BadOptionsAreRefused) {
  test::TempDir dir;
  auto expect_refused = [&](SynthOptions o, const std::string& mention) {
    try {
      synth_model(o, dir / "bad.gguf");
      ADD_FAILURE() << "accepted: " << mention;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kSynthOption) << e.what();
      EXPECT_NE(e.message().find(mention), std::string::npos) << e.what();
    }
  };
  SynthOptions o;
  o.preset = "llama-70b";
  expect_refused(o, "llama-70b");
  o = SynthOptions{};
  o.quant = "q2_k";
  expect_refused(o, "q2_k");
  o = SynthOptions{};
  o.layers = 0;
  expect_refused(o, "layers");
  o = SynthOptions{};
  o.gguf_version = 4;
  expect_refused(o, "gguf_version");
  o = SynthOptions{};
  o.shape = SynthShape{};
  o.shape->n_kv_heads = 3;
  expect_refused(o, "kv heads");
  o.shape = SynthShape{};
  o.shape->vocab_size = 100;
  expect_refused(o, "vocab");
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.gguf"));
}

}  // namespace
}  // namespace lw
