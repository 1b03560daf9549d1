// The byte-level BPE ("gpt2") tokenizer on a small vocabulary built here with hand-checkable
// merges, the tekken pre-tokenizer split against hand-worked regex matches, and round trips
// of arbitrary bytes.
#include <gtest/gtest.h>

#include <random>

#include "client/bpe.h"
#include "client/bpe_pretokenize.h"
#include "client/tokenizer.h"
#include "client/unicode.h"
#include "common/error.h"

namespace lw {
namespace {

// Byte-level text of raw bytes (space -> "Ġ", as GPT-2 maps it).
std::string mapped(std::string_view raw) {
  std::string out;
  for (unsigned char b : raw) utf8_append(out, bpe_byte_to_char(b));
  return out;
}

const std::vector<std::string> kMerges = {
    "h e",    "l l",     "he ll", "hell o", "Ġ w", "o r", "Ġw or",
    "Ġwor l", "Ġworl d", "b c",   "a b",    "x y", "a a",
};

struct BpeSpec {
  std::vector<std::string> merges = kMerges;
  std::vector<std::string> extra_tokens = {"xyz"};  // whole tokens no merge reaches
  std::string pre = "tekken";
  std::string missing_bytes;  // bytes left without a token
};

// Tokens: 5 control tokens, the byte characters (ids 5..260 when none is missing), then each
// merge's result and the extra tokens.
GgufMetadata bpe_metadata(const BpeSpec& spec = {}) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "[INST]", "[/INST]"};
  std::vector<int32_t> types = {2, 3, 3, 3, 3};
  for (int b = 0; b < 256; ++b) {
    if (spec.missing_bytes.find(static_cast<char>(b)) != std::string::npos) continue;
    tokens.push_back(mapped(std::string(1, static_cast<char>(b))));
    types.push_back(1);
  }
  for (const std::string& m : spec.merges) {
    const size_t space = m.find(' ');
    tokens.push_back(m.substr(0, space) + m.substr(space + 1));
    types.push_back(1);
  }
  for (const std::string& t : spec.extra_tokens) {
    tokens.push_back(t);
    types.push_back(1);
  }
  std::vector<GgufValue> tok_values, type_values, merge_values;
  for (auto& t : tokens) tok_values.push_back(GgufValue::string(t));
  for (int32_t t : types) type_values.push_back(GgufValue::i32(t));
  for (auto& m : spec.merges) merge_values.push_back(GgufValue::string(m));
  return {
      {"tokenizer.ggml.model", GgufValue::string("gpt2")},
      {"tokenizer.ggml.pre", GgufValue::string(spec.pre)},
      {"tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, tok_values)},
      {"tokenizer.ggml.token_type", GgufValue::array(GgufValueType::INT32, type_values)},
      {"tokenizer.ggml.merges", GgufValue::array(GgufValueType::STRING, merge_values)},
      {"tokenizer.ggml.bos_token_id", GgufValue::u32(1)},
      {"tokenizer.ggml.eos_token_id", GgufValue::u32(2)},
      {"tokenizer.ggml.unknown_token_id", GgufValue::u32(0)},
  };
}

class BpeTest : public testing::Test {
 protected:
  BpeTest() : tok_(Tokenizer::from_metadata(bpe_metadata(), "synth-bpe")) {}
  // The id of a token given as raw text ("hello", " world").
  int32_t id(std::string_view raw) const {
    const auto found = tok_.find(mapped(raw));
    EXPECT_TRUE(found.has_value()) << raw;
    return found.value_or(-1);
  }
  std::vector<int32_t> ids(std::initializer_list<std::string_view> raws) const {
    std::vector<int32_t> out;
    for (auto r : raws) out.push_back(id(r));
    return out;
  }
  Tokenizer tok_;
};

TEST_F(BpeTest, ByteMappingIsGpt2s) {
  EXPECT_EQ(bpe_byte_to_char('a'), U'a');
  EXPECT_EQ(bpe_byte_to_char(' '), 0x120u);   // Ġ
  EXPECT_EQ(bpe_byte_to_char('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(bpe_byte_to_char(0x00), 0x100u);
  EXPECT_EQ(bpe_byte_to_char(0xAD), 0x143u);  // the last non-printable byte
  for (int b = 0; b < 256; ++b) EXPECT_EQ(bpe_char_to_byte(bpe_byte_to_char(b)), b);
  EXPECT_EQ(bpe_char_to_byte(' '), -1);
  EXPECT_EQ(bpe_char_to_byte(0x144), -1);
}

TEST_F(BpeTest, MergesByRank) {
  EXPECT_EQ(tok_.kind(), TokenizerKind::kBpe);
  EXPECT_EQ(tok_.encode("hello world", false, false), ids({"hello", " world"}));
  // "H e" is no merge: only "l l" applies.
  EXPECT_EQ(tok_.encode("Hello", false, false), ids({"H", "e", "ll", "o"}));
  // "b c" (rank 9) beats "a b" (rank 10).
  EXPECT_EQ(tok_.encode("abc", false, false), ids({"a", "bc"}));
  // Equal pairs: the leftmost merges first.
  EXPECT_EQ(tok_.encode("aaa", false, false), ids({"aa", "a"}));
  // A pre-token that is a whole token is taken as is, though no merge reaches it.
  EXPECT_EQ(tok_.encode("xyz", false, false), ids({"xyz"}));
  EXPECT_EQ(tok_.encode("xyzz", false, false), ids({"xy", "z", "z"}));
  // "!" is the optional prefix of the pre-token "!world"; without a space no "Ġ w" merge applies.
  EXPECT_EQ(tok_.encode("hello!world", false, false), ids({"hello", "!", "w", "or", "l", "d"}));
}

TEST_F(BpeTest, ReversedRanksChangeTheResult) {
  BpeSpec spec;
  spec.merges = {"a b", "b c"};
  const Tokenizer t = Tokenizer::from_metadata(bpe_metadata(spec), "reversed");
  const std::vector<int32_t> want = {*t.find("ab"), *t.find("c")};
  EXPECT_EQ(t.encode("abc", false, false), want);
}

TEST_F(BpeTest, ControlTokensOnlyWhenAsked) {
  EXPECT_EQ(tok_.encode("[INST]hello[/INST]", true, true),
            (std::vector<int32_t>{1, 3, id("hello"), 4}));
  const std::vector<int32_t> raw = tok_.encode("[INST]hello[/INST]", false, false);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), 3) + std::count(raw.begin(), raw.end(), 4), 0);
  EXPECT_EQ(raw.front(), id("["));
  EXPECT_EQ(tok_.decode(raw), "[INST]hello[/INST]");
  DecodeOptions render;
  render.render_special = true;
  EXPECT_EQ(tok_.decode(std::vector<int32_t>{1, 3, id("hello"), 4}, render),
            "<s>[INST]hello[/INST]");
  // No space prefix in byte-level BPE: a leading space is kept.
  EXPECT_EQ(tok_.decode(ids({" world"})), " world");
}

TEST_F(BpeTest, ArbitraryBytesRoundTrip) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::string bytes(1 + rng() % 64, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    const std::vector<int32_t> ids = tok_.encode(bytes, false, false);
    ASSERT_EQ(tok_.decode(ids), bytes);
    // The stream gives the same bytes.
    StreamDecoder stream(tok_);
    std::string joined;
    for (int32_t i : ids) joined += stream.push(i);
    joined += stream.finish();
    ASSERT_EQ(joined, bytes);
  }
  for (const std::string text :
       {"héllo wörld", "日本語 text", "emoji 😀!", "tabs\tand\nlines\r\n"}) {
    EXPECT_EQ(tok_.decode(tok_.encode(text, false, false)), text);
  }
}

TEST_F(BpeTest, ByteWithoutTokenIsATypedError) {
  BpeSpec spec;
  spec.missing_bytes = "q";
  const Tokenizer t = Tokenizer::from_metadata(bpe_metadata(spec), "noq");
  EXPECT_EQ(t.decode(t.encode("hello", false, false)), "hello");
  try {
    t.encode("hello quiz", false, false);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTokUnencodable);
    EXPECT_NE(std::string(e.what()).find("byte 0x71"), std::string::npos) << e.what();
  }
}

TEST_F(BpeTest, MetadataErrors) {
  {
    GgufMetadata md = bpe_metadata();
    md.pop_back();  // unknown_token_id
    md.pop_back();  // eos
    md.pop_back();  // bos
    md.pop_back();  // merges
    try {
      Tokenizer::from_metadata(md, "nomerges.gguf");
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kTokMetadata);
      EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.merges"), std::string::npos);
    }
  }
  {
    BpeSpec spec;
    spec.merges = {"h e", "noseparator"};
    try {
      Tokenizer::from_metadata(bpe_metadata(spec), "badmerge.gguf");
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kTokMetadata);
      EXPECT_NE(std::string(e.what()).find("merges[1]"), std::string::npos) << e.what();
    }
  }
  {
    BpeSpec spec;
    spec.extra_tokens = {"raw space"};  // ' ' is not a byte-level character
    try {
      Tokenizer::from_metadata(bpe_metadata(spec), "unmapped.gguf");
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kTokMetadata);
      EXPECT_NE(std::string(e.what()).find("raw space"), std::string::npos) << e.what();
    }
  }
  {
    BpeSpec spec;
    spec.pre = "llama3";
    try {
      Tokenizer::from_metadata(bpe_metadata(spec), "pre.gguf");
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kTokUnsupported);
      EXPECT_NE(std::string(e.what()).find("llama3"), std::string::npos) << e.what();
    }
  }
}

TEST(TekkenSplit, MatchesTheRegexByHand) {
  struct Case {
    std::string text;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"Hello world", {"Hello", " world"}},
      {"HelloWorld", {"Hello", "World"}},
      {"camelCaseWord", {"camel", "Case", "Word"}},
      {"ABCdef", {"ABCdef"}},          // [U]* then [W]+
      {"ABC DEF", {"ABC", " DEF"}},    // [U]+ with the space as the optional prefix
      {"2024", {"2", "0", "2", "4"}},  // \p{N} one at a time
      {"x  \n  y", {"x", "  \n", " ", " y"}},
      {"end  ", {"end", "  "}},  // \s+(?!\S) at the end takes the whole run
      {"a\n\nb", {"a", "\n\n", "b"}},
      {"hi\r\n", {"hi", "\r\n"}},
      {"foo!!! bar", {"foo", "!!!", " bar"}},
      {" !?/\n", {" !?/\n"}},  //  ?[^\s\p{L}\p{N}]+[\r\n/]*
      {"don't", {"don", "'t"}},
      {"#1", {"#", "1"}},
      {"e\xCC\x81t\xC3\xA9", {"e\xCC\x81t\xC3\xA9"}},  // marks belong to both letter sets
      {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"}},  // Lo
      {"\xC3\x80"
       "BC d\xC3\xA9"
       "f",
       {"\xC3\x80"
        "BC",
        " d\xC3\xA9"
        "f"}},
      {"\xC7\x85"
       "emal",
       {"\xC7\x85"
        "emal"}},                    // Lt counts as upper case
      {"\xC2\xA0x", {"\xC2\xA0x"}},  // NBSP is the optional prefix
      {"a\xE3\x80\x80"
       "b",
       {"a",
        "\xE3\x80\x80"
        "b"}},                             // ideographic space likewise
      {"\xE2\x85\xAB", {"\xE2\x85\xAB"}},  // Roman numeral twelve: \p{N}
      {"\xff\xfe"
       "ab",
       {"\xff\xfe", "ab"}},  // invalid bytes are symbols
      {"", {}},
  };
  for (const Case& c : cases) {
    const std::vector<std::string_view> got = tekken_split(c.text);
    EXPECT_EQ(std::vector<std::string>(got.begin(), got.end()), c.parts) << "text: " << c.text;
  }
}

TEST(TekkenSplit, CoversRandomTextExactly) {
  const std::vector<std::string> alphabet = {
      "a",   "B",  " ",        "\n",       "\r",           "1",        "!",
      "/",   "\t", "\xC3\xA9", "\xCC\x81", "\xE6\x97\xA5", "\xC2\xA0", "\xF0\x9F\x98\x80",
      "\xff"};
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (int i = 0, n = static_cast<int>(rng() % 40); i < n; ++i)
      text += alphabet[rng() % alphabet.size()];
    std::string joined;
    for (std::string_view part : tekken_split(text)) {
      ASSERT_FALSE(part.empty());
      joined += part;
    }
    ASSERT_EQ(joined, text);
  }
}

}  // namespace
}  // namespace lw
