// Byte-level BPE encoding ("gpt2" vocabularies such as Mistral's tekken): the text is split
// by the tekken pre-tokenizer (client/bpe_pretokenize.h); each pre-token's bytes become
// GPT-2's byte characters, a pre-token that is a whole token is taken as is (tiktoken's rule,
// TokenizerVocab::ignore_merges), and otherwise adjacent symbols are merged by rank from
// tokenizer.ggml.merges (lowest rank first, leftmost on ties), as llama.cpp's
// llm_tokenizer_bpe does.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "client/tokenizer_vocab.h"

namespace lw {

// Appends the ids of raw `text` to `out`. Throws LW-TOK-004 when a final symbol is no token
// and one of its bytes has no token either.
void bpe_encode(const TokenizerVocab& vocab, std::string_view text, std::vector<int32_t>& out);

// Encodes one pre-token (no splitting); exposed for tests.
void bpe_encode_word(const TokenizerVocab& vocab, std::string_view word, std::vector<int32_t>& out);

}  // namespace lw
