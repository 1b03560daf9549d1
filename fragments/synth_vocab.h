// The tokenizer vocabulary of synthetic models: a small, real SentencePiece-style ("llama")
// vocabulary. Layout: 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte tokens "<0x00>".."<0xFF>",
// then normal pieces ("▁" U+2581 marks a leading space): "▁", printable ASCII characters,
// common English words with every prefix (so merges can reach them), common suffixes and
// letter n-grams to fill large vocabularies. Pieces are unique and prefix-closed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lw {

// SentencePiece token types as llama.cpp stores them in tokenizer.ggml.token_type.
enum class SynthTokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6 };

constexpr uint32_t kSynthFirstByteToken = 3;
constexpr uint32_t kSynthFirstPiece = 259;  // first normal piece

struct SynthVocab {
  std::vector<std::string> tokens;  // UTF-8
  std::vector<float> scores;        // log-prob style: <= 0, higher for longer / commoner pieces
  std::vector<int32_t> types;       // SynthTokenType values
};

// Deterministic for a given size. Requires vocab_size >= kSynthFirstPiece (the caller checks);
// sizes beyond the built-in pieces are filled with generated letter n-grams.
SynthVocab synth_vocab(uint32_t vocab_size);

}  // namespace lw
