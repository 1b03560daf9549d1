// TokenizerVocab: the tokenizer.ggml.* metadata of a GGUF (or of a fragment store's manifest)
// parsed and validated into the tables both encoders use: tokens, scores, types, BOS/EOS/UNK,
// flags, byte tokens, BPE merge ranks, and each token's decoded bytes. Built once, then
// read-only (safe to share across threads).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fragments/gguf.h"

namespace lw {

// Token types as llama.cpp stores them in tokenizer.ggml.token_type (SentencePiece's types).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, </s>, [INST]: matched in text only when parse_special is asked
  kUserDefined = 4,  // always matched in text as a whole
  kUnused = 5,
  kByte = 6,  // "<0xNN>" byte-fallback tokens
};

// SentencePiece's visible space, U+2581 LOWER ONE EIGHTH BLOCK: "▁the" is " the".
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

enum class TokenizerKind {
  kSpm,  // tokenizer.ggml.model = "llama": SentencePiece BPE by score, byte fallback, "▁"
  kBpe,  // tokenizer.ggml.model = "gpt2": byte-level BPE by merge rank, tekken pre-tokenizer
};

// Hash for string keys that also accepts string_view lookups without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIndex = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct TokenizerVocab {
  TokenizerKind kind = TokenizerKind::kSpm;
  std::string model;                // tokenizer.ggml.model as stored
  std::string pre;                  // tokenizer.ggml.pre ("" when absent)
  std::vector<std::string> tokens;  // as stored (SPM pieces use "▁"; BPE tokens byte-mapped)
  std::vector<float> scores;        // one per token (0 when the file has none: BPE)
  std::vector<TokenType> types;     // one per token (kNormal when the file has none: BPE)
  // What each token decodes to: "▁" -> space (SPM), <0xNN> -> the byte, byte-mapped BPE text ->
  // the bytes; control / unknown / user-defined tokens -> their stored text.
  std::vector<std::string> surface;
  // Token text -> id for the tokens an encoder may produce from text: SPM normal, user-defined
  // and unused pieces (SentencePiece's merge set); BPE normal and user-defined tokens.
  StringIndex pieces;
  // The token that stands for each byte: SPM "<0xNN>", BPE the byte's mapped character; -1 none.
  std::array<int32_t, 256> byte_token{};
  // BPE: "left right" (as in tokenizer.ggml.merges) -> rank (its index; lower merges first).
  StringIndex merge_rank;
  int32_t bos = -1;  // -1: the vocabulary has none
  int32_t eos = -1;
  int32_t unk = -1;
  bool add_bos = false;           // tokenizer.ggml.add_bos_token: callers' default for BOS
  bool add_eos = false;           // tokenizer.ggml.add_eos_token
  bool add_space_prefix = false;  // tokenizer.ggml.add_space_prefix (SPM default true)
  bool ignore_merges = false;     // BPE: a pre-token that is a whole token is taken as is

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
};

// Parses and validates the tokenizer.ggml.* keys of `metadata`; `source` (a file or store
// name) appears in errors. Throws LW-TOK-001 for missing / mistyped / inconsistent keys (naming
// the key, index and values) and LW-TOK-002 for a model or pre-tokenizer not supported.
// Defaults (documented in docs/TOKENIZER.md): llama -> BOS 1, EOS 2, UNK 0, add_bos true,
// add_space_prefix true; gpt2 -> no BOS/EOS/UNK unless given, no flags.
TokenizerVocab tokenizer_vocab_from_metadata(const GgufMetadata& metadata,
                                             const std::string& source);

// GPT-2's byte <-> character mapping of byte-level BPE: printable bytes map to themselves,
// the rest to U+0100 upwards. byte_to_char(b) is the code point of byte b; char_to_byte(cp)
// returns -1 for a code point no byte maps to.
char32_t bpe_byte_to_char(uint8_t b);
int bpe_char_to_byte(char32_t cp);

}  // namespace lw
