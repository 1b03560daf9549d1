#include "fragments/arch.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/error.h"

namespace lw {
namespace {

struct Shape {
  uint32_t dim, layers, heads, kv_heads, head_dim, ffn, vocab;
};

// Metadata and tensor descriptions of a llama model, as a GGUF would hold them; no file.
struct Model {
  GgufMetadata metadata;
  std::vector<TensorDesc> tensors;

  void set(const std::string& key, GgufValue v) {
    for (auto& [k, value] : metadata) {
      if (k == key) {
        value = std::move(v);
        return;
      }
    }
    metadata.emplace_back(key, std::move(v));
  }
  void erase_key(const std::string& key) {
    std::erase_if(metadata, [&](const auto& kv) { return kv.first == key; });
  }
  TensorDesc* tensor(const std::string& name) {
    for (TensorDesc& t : tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  void erase_tensor(const std::string& name) {
    std::erase_if(tensors, [&](const TensorDesc& t) { return t.name == name; });
  }
  void add_tensor(const std::string& name, std::vector<uint64_t> ne) {
    tensors.push_back(TensorDesc{name, GgmlType::F32, std::move(ne)});
  }
};

Model make_model(const Shape& s) {
  Model m;
  m.set("general.architecture", GgufValue::string("llama"));
  m.set("llama.block_count", GgufValue::u32(s.layers));
  m.set("llama.context_length", GgufValue::u32(4096));
  m.set("llama.embedding_length", GgufValue::u32(s.dim));
  m.set("llama.feed_forward_length", GgufValue::u32(s.ffn));
  m.set("llama.attention.head_count", GgufValue::u32(s.heads));
  m.set("llama.attention.head_count_kv", GgufValue::u32(s.kv_heads));
  m.set("llama.attention.key_length", GgufValue::u32(s.head_dim));
  m.set("llama.attention.value_length", GgufValue::u32(s.head_dim));
  m.set("llama.rope.freq_base", GgufValue::f32(1.0e6f));
  m.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  m.set("tokenizer.ggml.model", GgufValue::string("llama"));
  const uint64_t q = uint64_t{s.heads} * s.head_dim, kv = uint64_t{s.kv_heads} * s.head_dim;
  m.add_tensor("token_embd.weight", {s.dim, s.vocab});
  for (uint32_t i = 0; i < s.layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    m.add_tensor(b + "attn_norm.weight", {s.dim});
    m.add_tensor(b + "attn_q.weight", {s.dim, q});
    m.add_tensor(b + "attn_k.weight", {s.dim, kv});
    m.add_tensor(b + "attn_v.weight", {s.dim, kv});
    m.add_tensor(b + "attn_output.weight", {q, s.dim});
    m.add_tensor(b + "ffn_norm.weight", {s.dim});
    m.add_tensor(b + "ffn_gate.weight", {s.dim, s.ffn});
    m.add_tensor(b + "ffn_up.weight", {s.dim, s.ffn});
    m.add_tensor(b + "ffn_down.weight", {s.ffn, s.dim});
  }
  m.add_tensor("output_norm.weight", {s.dim});
  m.add_tensor("output.weight", {s.dim, s.vocab});
  return m;
}

constexpr Shape kMistral7b{4096, 32, 32, 8, 128, 14336, 32768};
constexpr Shape kMagistral{5120, 40, 32, 8, 128, 32768, 131072};
constexpr Shape kTiny{256, 4, 8, 2, 32, 768, 512};

TEST(ArchTest, TensorLayer) {
  EXPECT_EQ(tensor_layer("blk.0.attn_q.weight"), 0);
  EXPECT_EQ(tensor_layer("blk.31.ffn_down.weight"), 31);
  EXPECT_EQ(tensor_layer("token_embd.weight"), -1);
  EXPECT_EQ(tensor_layer("output.weight"), -1);
  EXPECT_EQ(tensor_layer("blk.x.attn_q.weight"), -1);
  EXPECT_EQ(tensor_layer("blk.7"), -1);
  EXPECT_EQ(tensor_layer("blk.01.attn_q.weight"), -1);
}

TEST(ArchTest, Mistral7bPreset) {
  Model m = make_model(kMistral7b);
  const ModelParams p = detect_architecture(m.metadata, m.tensors);
  EXPECT_EQ(p.preset, "mistral-7b");
  EXPECT_EQ(p.n_layers, 32u);
  EXPECT_EQ(p.dim, 4096u);
  EXPECT_EQ(p.n_heads, 32u);
  EXPECT_EQ(p.n_kv_heads, 8u);
  EXPECT_EQ(p.head_dim, 128u);
  EXPECT_EQ(p.ffn_dim, 14336u);
  EXPECT_EQ(p.vocab_size, 32768u);
  EXPECT_EQ(p.context_length, 4096u);
  EXPECT_FLOAT_EQ(p.rope_theta, 1.0e6f);
  EXPECT_FLOAT_EQ(p.norm_eps, 1e-6f);
  EXPECT_FALSE(p.tied_output);
  EXPECT_EQ(p.tokenizer_model, "llama");
  EXPECT_EQ(p.q_dim(), 4096u);
  EXPECT_EQ(p.kv_dim(), 1024u);
}

TEST(ArchTest, MagistralHeadDimIsNotDimOverHeads) {
  Model m = make_model(kMagistral);
  const ModelParams p = detect_architecture(m.metadata, m.tensors);
  EXPECT_EQ(p.preset, "magistral-small");
  EXPECT_EQ(p.dim, 5120u);
  EXPECT_EQ(p.n_layers, 40u);
  EXPECT_EQ(p.head_dim, 128u);
  EXPECT_NE(p.head_dim, p.dim / p.n_heads);
  EXPECT_EQ(p.q_dim(), 4096u);
  EXPECT_EQ(p.kv_dim(), 1024u);
  EXPECT_EQ(p.ffn_dim, 32768u);
  EXPECT_EQ(p.vocab_size, 131072u);
}

TEST(ArchTest, PartialModelKeepsPresetName) {
  Shape s = kMistral7b;
  s.layers = 2;
  Model m = make_model(s);
  const ModelParams p = detect_architecture(m.metadata, m.tensors);
  EXPECT_EQ(p.preset, "mistral-7b");
  EXPECT_EQ(p.n_layers, 2u);
}

TEST(ArchTest, OtherShapesAreGeneric) {
  Model m = make_model(kTiny);
  EXPECT_EQ(detect_architecture(m.metadata, m.tensors).preset, "llama-generic");
  Shape s = kMistral7b;
  s.vocab = 32000;  // mistral v0.1 vocabulary: not the v0.3 preset
  s.layers = 1;
  m = make_model(s);
  EXPECT_EQ(detect_architecture(m.metadata, m.tensors).preset, "llama-generic");
}

TEST(ArchTest, DefaultsAndTiedOutput) {
  Model m = make_model(kTiny);
  for (const char* key : {"llama.attention.head_count_kv", "llama.attention.key_length",
                          "llama.attention.value_length", "llama.rope.freq_base",
                          "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model"}) {
    m.erase_key(key);
  }
  // With no head_count_kv every head has its own K/V: widen attn_k / attn_v to match.
  for (uint32_t i = 0; i < kTiny.layers; ++i) {
    for (const char* t : {"attn_k", "attn_v"}) {
      m.tensor("blk." + std::to_string(i) + "." + t + ".weight")->ne[1] = 256;
    }
  }
  m.erase_tensor("output.weight");
  const ModelParams p = detect_architecture(m.metadata, m.tensors);
  EXPECT_EQ(p.n_kv_heads, 8u);
  EXPECT_EQ(p.head_dim, 32u);
  EXPECT_FLOAT_EQ(p.rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(p.norm_eps, 1e-5f);
  EXPECT_TRUE(p.tied_output);
  EXPECT_EQ(p.tokenizer_model, "");
}

TEST(ArchTest, TokenCountMatchingVocabIsAccepted) {
  Model m = make_model(kTiny);
  std::vector<GgufValue> tokens(kTiny.vocab, GgufValue::string("x"));
  m.set("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, std::move(tokens)));
  m.set("llama.vocab_size", GgufValue::u32(kTiny.vocab));
  EXPECT_EQ(detect_architecture(m.metadata, m.tensors).vocab_size, kTiny.vocab);
}

struct Refusal {
  const char* name;
  std::function<void(Model&)> mutate;
  ErrorCode code;
  std::vector<std::string> mentions;  // substrings the message must contain
};

TEST(ArchTest, RefusalTable) {
  const Refusal table[] = {
      {"other architecture",
       [](Model& m) { m.set("general.architecture", GgufValue::string("gpt2")); },
       ErrorCode::kArchUnsupported,
       {"gpt2"}},
      {"architecture missing",
       [](Model& m) { m.erase_key("general.architecture"); },
       ErrorCode::kGgufMissingKey,
       {"general.architecture"}},
      {"architecture not a string",
       [](Model& m) { m.set("general.architecture", GgufValue::u32(1)); },
       ErrorCode::kGgufMissingKey,
       {"general.architecture"}},
      {"moe router",
       [](Model& m) {
         m.add_tensor("blk.0.ffn_gate_inp.weight", {256, 8});
       },
       ErrorCode::kArchTensor,
       {"blk.0.ffn_gate_inp.weight", "mixture-of-experts"}},
      {"moe experts",
       [](Model& m) {
         m.add_tensor("blk.1.ffn_up_exps.weight", {256, 768, 8});
       },
       ErrorCode::kArchTensor,
       {"blk.1.ffn_up_exps.weight"}},
      {"bias",
       [](Model& m) { m.add_tensor("blk.0.attn_q.bias", {256}); },
       ErrorCode::kArchTensor,
       {"blk.0.attn_q.bias", "bias"}},
      {"rope freqs",
       [](Model& m) { m.add_tensor("rope_freqs.weight", {16}); },
       ErrorCode::kArchTensor,
       {"rope_freqs.weight"}},
      {"unknown name",
       [](Model& m) { m.add_tensor("blk.2.mystery.weight", {256}); },
       ErrorCode::kArchTensor,
       {"blk.2.mystery.weight"}},
      {"unknown head tensor",
       [](Model& m) {
         m.add_tensor("pos_embd.weight", {256, 16});
       },
       ErrorCode::kArchTensor,
       {"pos_embd.weight"}},
      {"layer beyond block_count",
       [](Model& m) { m.add_tensor("blk.4.attn_norm.weight", {256}); },
       ErrorCode::kArchTensor,
       {"blk.4.attn_norm.weight", "4"}},
      {"missing layer tensor",
       [](Model& m) { m.erase_tensor("blk.3.ffn_up.weight"); },
       ErrorCode::kGgufMissingTensor,
       {"blk.3.ffn_up.weight"}},
      {"missing embedding",
       [](Model& m) { m.erase_tensor("token_embd.weight"); },
       ErrorCode::kGgufMissingTensor,
       {"token_embd.weight"}},
      {"missing output norm",
       [](Model& m) { m.erase_tensor("output_norm.weight"); },
       ErrorCode::kGgufMissingTensor,
       {"output_norm.weight"}},
      {"duplicate tensor",
       [](Model& m) { m.add_tensor("blk.0.attn_norm.weight", {256}); },
       ErrorCode::kGgufDuplicate,
       {"blk.0.attn_norm.weight"}},
      {"wrong k shape",
       [](Model& m) {
         m.tensor("blk.1.attn_k.weight")->ne = {256, 128};
       },
       ErrorCode::kArchShape,
       {"blk.1.attn_k.weight", "[256, 128]", "[256, 64]"}},
      {"transposed down",
       [](Model& m) {
         m.tensor("blk.0.ffn_down.weight")->ne = {256, 768};
       },
       ErrorCode::kArchShape,
       {"blk.0.ffn_down.weight", "[256, 768]", "[768, 256]"}},
      {"norm is a matrix",
       [](Model& m) {
         m.tensor("blk.2.ffn_norm.weight")->ne = {256, 2};
       },
       ErrorCode::kArchShape,
       {"blk.2.ffn_norm.weight"}},
      {"output vocab differs",
       [](Model& m) {
         m.tensor("output.weight")->ne = {256, 500};
       },
       ErrorCode::kArchShape,
       {"output.weight", "[256, 500]", "[256, 512]"}},
      {"embedding width",
       [](Model& m) {
         m.tensor("token_embd.weight")->ne = {255, 512};
       },
       ErrorCode::kArchShape,
       {"token_embd.weight", "255"}},
      {"heads not a multiple of kv heads",
       [](Model& m) { m.set("llama.attention.head_count_kv", GgufValue::u32(3)); },
       ErrorCode::kArchShape,
       {"head_count_kv", "3"}},
      {"odd head dim",
       [](Model& m) {
         m.set("llama.attention.key_length", GgufValue::u32(31));
         m.set("llama.attention.value_length", GgufValue::u32(31));
       },
       ErrorCode::kArchShape,
       {"31"}},
      {"value length differs",
       [](Model& m) { m.set("llama.attention.value_length", GgufValue::u32(64)); },
       ErrorCode::kArchShape,
       {"value_length", "64"}},
      {"token count differs from vocab",
       [](Model& m) {
         std::vector<GgufValue> tokens(500, GgufValue::string("x"));
         m.set("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, std::move(tokens)));
       },
       ErrorCode::kArchShape,
       {"tokenizer.ggml.tokens", "500", "512"}},
      {"vocab_size differs",
       [](Model& m) { m.set("llama.vocab_size", GgufValue::u32(511)); },
       ErrorCode::kArchShape,
       {"llama.vocab_size", "511"}},
      {"missing ffn length",
       [](Model& m) { m.erase_key("llama.feed_forward_length"); },
       ErrorCode::kGgufMissingKey,
       {"llama.feed_forward_length"}},
      {"missing context length",
       [](Model& m) { m.erase_key("llama.context_length"); },
       ErrorCode::kGgufMissingKey,
       {"llama.context_length"}},
      {"block count is a string",
       [](Model& m) { m.set("llama.block_count", GgufValue::string("4")); },
       ErrorCode::kGgufMissingKey,
       {"llama.block_count"}},
      {"negative head count",
       [](Model& m) { m.set("llama.attention.head_count", GgufValue::i32(-8)); },
       ErrorCode::kGgufMissingKey,
       {"llama.attention.head_count"}},
      {"zero layers",
       [](Model& m) { m.set("llama.block_count", GgufValue::u32(0)); },
       ErrorCode::kArchShape,
       {"llama.block_count"}},
      {"rope base not a number",
       [](Model& m) { m.set("llama.rope.freq_base", GgufValue::string("1e6")); },
       ErrorCode::kGgufMissingKey,
       {"llama.rope.freq_base"}},
      {"negative rms eps",
       [](Model& m) { m.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(-1.0f)); },
       ErrorCode::kArchShape,
       {"layer_norm_rms_epsilon"}},
  };
  for (const Refusal& r : table) {
    SCOPED_TRACE(r.name);
    Model m = make_model(kTiny);
    ASSERT_NO_THROW(detect_architecture(m.metadata, m.tensors));
    r.mutate(m);
    try {
      detect_architecture(m.metadata, m.tensors);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.id(), error_info(r.code).id) << e.what();
      for (const std::string& s : r.mentions) {
        EXPECT_NE(e.message().find(s), std::string::npos) << "'" << s << "' not in: " << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace lw
