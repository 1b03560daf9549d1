// SentencePiece BPE encoding ("llama" vocabularies): the algorithm of SentencePiece's
// bpe_model.cc (and llama.cpp's llm_tokenizer_spm): start from one symbol per UTF-8 character,
// repeatedly merge the adjacent pair whose concatenation is a piece with the highest score
// (leftmost on ties), then emit each symbol's piece; symbols that are no piece fall back to
// <0xNN> byte tokens (UNK where a byte token is missing). Unused pieces are split back into
// the pieces they were merged from.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "client/tokenizer_vocab.h"

namespace lw {

// Appends the ids of `text` to `out`. `text` is already escaped: spaces replaced by "▁" and
// the dummy prefix added by the caller. Throws LW-TOK-004 when a byte has neither a byte token
// nor an UNK token to stand for it.
void spm_encode(const TokenizerVocab& vocab, std::string_view text, std::vector<int32_t>& out);

}  // namespace lw
