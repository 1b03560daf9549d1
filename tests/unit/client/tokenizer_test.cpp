// The SentencePiece-style ("llama") tokenizer: encodings of Mistral's real v3 vocabulary equal
// what SentencePiece itself gives (golden ids generated once by tests/data/tokenizer/
// make_golden.py), round trips, control tokens, streaming decode, unknown ids, the synthetic
// vocabulary of fragment_tool synth through a fragment store, and metadata errors.
#include "client/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "client/unicode.h"
#include "common/error.h"
#include "fragments/store.h"
#include "fragments/synth.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

std::filesystem::path data_dir() { return test::source_dir() / "tests" / "data" / "tokenizer"; }

const Tokenizer& v3() {
  static const Tokenizer tok = Tokenizer::from_gguf(data_dir() / "mistral-v3-vocab-tiny.gguf");
  return tok;
}

struct GoldenCase {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
};

std::vector<GoldenCase> golden() {
  std::ifstream f(data_dir() / "spm_v3_golden.json");
  EXPECT_TRUE(f.good());
  const nlohmann::json j = nlohmann::json::parse(f);
  std::vector<GoldenCase> cases;
  for (const auto& c : j.at("cases")) {
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int32_t>>(),
                     c.at("pieces").get<std::vector<std::string>>()});
  }
  return cases;
}

bool valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const Utf8Unit u = utf8_decode(s, pos);
    if (!u.valid) return false;
    pos += u.len;
  }
  return true;
}

template <typename Fn>
ErrorCode code_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no lw::Error thrown";
  return ErrorCode::kInternal;
}

TEST(TokenizerSpm, VocabularyFacts) {
  const Tokenizer& t = v3();
  EXPECT_EQ(t.kind(), TokenizerKind::kSpm);
  EXPECT_EQ(t.n_vocab(), 32768);
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 2);
  EXPECT_EQ(t.unk(), 0);
  EXPECT_TRUE(t.add_bos_default());
  EXPECT_FALSE(t.add_eos_default());
  EXPECT_EQ(t.find("[INST]"), 3);
  EXPECT_EQ(t.find("[/INST]"), 4);
  EXPECT_EQ(t.type(3), TokenType::kControl);
  EXPECT_EQ(t.piece(781), "<0x0A>");
  EXPECT_EQ(t.type(781), TokenType::kByte);
  EXPECT_FALSE(t.find("no such piece").has_value());
}

TEST(TokenizerSpm, MatchesSentencePieceGolden) {
  const std::vector<GoldenCase> cases = golden();
  ASSERT_GE(cases.size(), 30u);
  for (const GoldenCase& c : cases) {
    EXPECT_EQ(v3().encode(c.text, false, false), c.ids) << "text: \"" << c.text << "\"";
    std::vector<std::string> pieces;
    for (int32_t id : c.ids) pieces.push_back(v3().piece(id));
    EXPECT_EQ(pieces, c.pieces) << "text: \"" << c.text << "\"";
  }
}

TEST(TokenizerSpm, GoldenDecodesBackToText) {
  for (const GoldenCase& c : golden()) {
    // Text that holds U+2581 itself decodes with spaces there, as SentencePiece does.
    if (c.text.find("\xE2\x96\x81") != std::string::npos) {
      EXPECT_EQ(v3().decode(c.ids), "tokens with lower blocks");
      continue;
    }
    EXPECT_EQ(v3().decode(c.ids), c.text);
  }
}

TEST(TokenizerSpm, BosAndControlTokens) {
  EXPECT_EQ(v3().encode("Hello world", true, false), (std::vector<int32_t>{1, 23325, 2294}));
  // Control tokens are text unless parse_special: then each fragment between them is encoded
  // on its own, with its dummy-prefix space.
  EXPECT_EQ(v3().encode("[INST]Hello world[/INST]", false, true),
            (std::vector<int32_t>{3, 23325, 2294, 4}));
  EXPECT_EQ(v3().encode("<s>[INST] hi [/INST]", false, true),
            (std::vector<int32_t>{1, 3, 29473, 12782, 29473, 4}));
  const std::vector<int32_t> raw = v3().encode("[INST]", false, false);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), 3), 0);
  EXPECT_EQ(raw, (std::vector<int32_t>{1501, 17057, 29561}));  // ▁[ INST ]
}

TEST(TokenizerSpm, DecodeSpecialTokens) {
  const std::vector<int32_t> ids = {1, 3, 23325, 2294, 4, 12782, 2};
  EXPECT_EQ(v3().decode(ids), "Hello worldhi");
  DecodeOptions render;
  render.render_special = true;
  EXPECT_EQ(v3().decode(ids, render), "<s>[INST]Hello world[/INST]hi</s>");
  DecodeOptions keep;
  keep.strip_space_prefix = false;
  EXPECT_EQ(v3().decode(ids, keep), " Hello world hi");
  // encode(parse_special) then decode(render_special) gives the text back.
  const std::string text = "<s>[INST]What is it?[/INST]A test.</s>";
  EXPECT_EQ(v3().decode(v3().encode(text, false, true), render), text);
}

TEST(TokenizerSpm, RoundTrips) {
  const std::vector<std::string> texts = {
      "plain ASCII text, with punctuation: (a) [b] {c} <d>!",
      "  two leading spaces and two trailing  ",
      "multi\nline\n\n\ttext\r\n",
      "accents: àéîõü ÀÉÎÕÜ ç ñ ß ø å",
      "CJK: 漢字かなカナ한글",
      "emoji: 😀😃😄😁🤖🧠 👨‍👩‍👧‍👦",
      "byte fallback: 𠀀𪚥𝔘 \x7f\x01",
  };
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = v3().encode(text, true, false);
    EXPECT_EQ(v3().decode(ids), text);
  }
  // Invalid UTF-8 is carried byte by byte through byte tokens.
  const std::string invalid = "bad \xff\xfe bytes \xe2\x82";
  const std::vector<int32_t> ids = v3().encode(invalid, false, false);
  EXPECT_EQ(v3().decode(ids), invalid);
  const auto byte_ff = v3().find("<0xFF>");
  ASSERT_TRUE(byte_ff.has_value());
  EXPECT_NE(std::find(ids.begin(), ids.end(), *byte_ff), ids.end());
}

TEST(TokenizerSpm, StreamDecoderKeepsUtf8Whole) {
  // The family emoji and rare CJK are byte-fallback tokens: 4 tokens per character.
  const std::string text = "family 👨‍👩‍👧 rare 𠀀𪚥 done";
  const std::vector<int32_t> ids = v3().encode(text, true, false);
  StreamDecoder stream(v3());
  std::string joined;
  size_t held_back = 0;
  for (int32_t id : ids) {
    const std::string chunk = stream.push(id);
    EXPECT_TRUE(valid_utf8(chunk)) << "chunk after token " << id << " splits a character";
    if (chunk.empty()) ++held_back;
    joined += chunk;
  }
  joined += stream.finish();
  EXPECT_EQ(joined, text);
  EXPECT_GE(held_back, 9u);  // 3 of the 4 bytes of each byte-fallback character wait
  // An incomplete sequence at the end comes out of finish().
  StreamDecoder cut(v3());
  EXPECT_EQ(cut.push(*v3().find("<0xF0>")), "");
  EXPECT_EQ(cut.push(*v3().find("<0x9F>")), "");
  EXPECT_EQ(cut.finish(), "\xF0\x9F");
}

TEST(TokenizerSpm, UnknownIdsAreTypedErrors) {
  for (int32_t id : {-1, 32768, 1 << 30}) {
    const std::vector<int32_t> ids = {1, id};
    EXPECT_EQ(code_of([&] { v3().decode(ids); }), ErrorCode::kTokUnknownId) << id;
    EXPECT_EQ(code_of([&] { v3().piece(id); }), ErrorCode::kTokUnknownId) << id;
    StreamDecoder stream(v3());
    EXPECT_EQ(code_of([&] { stream.push(id); }), ErrorCode::kTokUnknownId) << id;
  }
  try {
    const std::vector<int32_t> ids = {32768};
    v3().decode(ids);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("32768"), std::string::npos) << e.what();
  }
}

TEST(TokenizerSpm, SynthStoreRoundTrips) {
  test::TempDir dir;
  SynthOptions options;
  options.preset = "tiny";
  options.layers = 1;
  options.quant = "f32";
  synth_model(options, dir / "model.gguf");
  store_split(dir / "model.gguf", dir / "store", SplitOptions{});
  const Tokenizer t = Tokenizer::from_store(dir / "store");
  EXPECT_EQ(t.n_vocab(), 512);
  EXPECT_EQ(t.bos(), 1);
  // Words of the synthetic vocabulary become their whole "▁word" piece.
  EXPECT_EQ(t.encode("the", false, false), (std::vector<int32_t>{*t.find("\xE2\x96\x81the")}));
  for (const std::string text :
       {"the quick brown fox", "Hello, world!\n", "ünïcödé 😀 日本", "  spaces   and\ttabs "}) {
    const std::vector<int32_t> ids = t.encode(text, true, false);
    EXPECT_EQ(ids.front(), 1);
    for (int32_t id : ids) EXPECT_LT(id, 512);
    EXPECT_EQ(t.decode(ids), text);
  }
  // The same vocabulary read from the GGUF file gives the same ids.
  const Tokenizer g = Tokenizer::from_gguf(dir / "model.gguf");
  EXPECT_EQ(g.encode("the quick brown fox", false, false),
            t.encode("the quick brown fox", false, false));
}

// Metadata of a tiny llama vocabulary for the error table.
GgufMetadata small_spm() {
  auto strings = [](std::vector<std::string> v) {
    std::vector<GgufValue> items;
    for (auto& s : v) items.push_back(GgufValue::string(s));
    return GgufValue::array(GgufValueType::STRING, std::move(items));
  };
  std::vector<GgufValue> scores, types;
  const std::vector<int32_t> t = {2, 3, 3, 1, 1, 1};
  for (int32_t x : t) {
    scores.push_back(GgufValue::f32(-1.0f));
    types.push_back(GgufValue::i32(x));
  }
  return {
      {"tokenizer.ggml.model", GgufValue::string("llama")},
      {"tokenizer.ggml.tokens", strings({"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b"})},
      {"tokenizer.ggml.scores", GgufValue::array(GgufValueType::FLOAT32, scores)},
      {"tokenizer.ggml.token_type", GgufValue::array(GgufValueType::INT32, types)},
  };
}

void set(GgufMetadata& md, const std::string& key, GgufValue value) {
  for (auto& [k, v] : md) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  md.emplace_back(key, std::move(value));
}

TEST(TokenizerSpm, SmallVocabularyWithoutByteTokensUsesUnk) {
  const Tokenizer t = Tokenizer::from_metadata(small_spm(), "small");
  // "c" is no piece and there are no byte tokens: UNK, shown as SentencePiece shows it.
  EXPECT_EQ(t.encode("ab c", false, false), (std::vector<int32_t>{3, 4, 5, 3, 0}));
  EXPECT_EQ(t.decode(t.encode("ab c", false, false)), "ab  \xE2\x81\x87 ");
}

TEST(TokenizerSpm, MetadataErrors) {
  struct Case {
    const char* name;
    std::function<void(GgufMetadata&)> edit;
    ErrorCode code;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"no model", [](GgufMetadata& md) { md.erase(md.begin()); }, ErrorCode::kTokMetadata,
       "tokenizer.ggml.model"},
      {"unknown model",
       [](GgufMetadata& md) { set(md, "tokenizer.ggml.model", GgufValue::string("bert")); },
       ErrorCode::kTokUnsupported, "bert"},
      {"gpt2 without tekken",
       [](GgufMetadata& md) {
         set(md, "tokenizer.ggml.model", GgufValue::string("gpt2"));
         set(md, "tokenizer.ggml.pre", GgufValue::string("default"));
       },
       ErrorCode::kTokUnsupported, "default"},
      {"scores length",
       [](GgufMetadata& md) {
         set(md, "tokenizer.ggml.scores",
             GgufValue::array(GgufValueType::FLOAT32, {GgufValue::f32(0)}));
       },
       ErrorCode::kTokMetadata, "scores has 1 entries for 6 tokens"},
      {"bad type",
       [](GgufMetadata& md) {
         std::vector<GgufValue> types(6, GgufValue::i32(1));
         types[4] = GgufValue::i32(9);
         set(md, "tokenizer.ggml.token_type", GgufValue::array(GgufValueType::INT32, types));
       },
       ErrorCode::kTokMetadata, "token_type[4]"},
      {"tokens not strings",
       [](GgufMetadata& md) {
         set(md, "tokenizer.ggml.tokens",
             GgufValue::array(GgufValueType::UINT32, {GgufValue::u32(1)}));
       },
       ErrorCode::kTokMetadata, "tokens[0]"},
      {"bos out of range",
       [](GgufMetadata& md) { set(md, "tokenizer.ggml.bos_token_id", GgufValue::u32(6)); },
       ErrorCode::kTokMetadata, "bos_token_id = 6"},
      {"duplicate piece",
       [](GgufMetadata& md) {
         std::vector<GgufValue> t;
         for (const char* s : {"<unk>", "<s>", "</s>", "a", "a", "b"})
           t.push_back(GgufValue::string(s));
         set(md, "tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, t));
       },
       ErrorCode::kTokMetadata, "token 4 \"a\" repeats token 3"},
      {"bad byte token",
       [](GgufMetadata& md) {
         std::vector<GgufValue> types = {GgufValue::i32(2), GgufValue::i32(3), GgufValue::i32(3),
                                         GgufValue::i32(1), GgufValue::i32(6), GgufValue::i32(1)};
         set(md, "tokenizer.ggml.token_type", GgufValue::array(GgufValueType::INT32, types));
       },
       ErrorCode::kTokMetadata, "<0xNN>"},
      {"add_bos not bool",
       [](GgufMetadata& md) { set(md, "tokenizer.ggml.add_bos_token", GgufValue::u32(1)); },
       ErrorCode::kTokMetadata, "add_bos_token"},
  };
  for (const Case& c : cases) {
    GgufMetadata md = small_spm();
    c.edit(md);
    try {
      Tokenizer::from_metadata(md, "vocab.gguf");
      ADD_FAILURE() << c.name << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), c.code) << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos)
          << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("vocab.gguf"), std::string::npos)
          << c.name << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace lw
