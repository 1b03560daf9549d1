// The pre-tokenizer split of Mistral's tekken vocabulary (llama.cpp: LLAMA_VOCAB_PRE_TYPE_TEKKEN),
// written by hand over Unicode classes. It is the leftmost-first match of this regex (the
// pattern of tekken's tokenizer.json), applied repeatedly:
//   [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
//  |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*
//  |\p{N}
//  | ?[^\s\p{L}\p{N}]+[\r\n/]*
//  |\s*[\r\n]+
//  |\s+(?!\S)
//  |\s+
// with the backtracking semantics of a regex engine. Invalid UTF-8 bytes count as one
// character of no class (not a letter, number or space).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace lw {

// The pre-tokens of `text` as consecutive views into it; together they cover `text` exactly.
std::vector<std::string_view> tekken_split(std::string_view text);

}  // namespace lw
