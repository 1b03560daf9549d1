// The pair-merging loop SentencePiece and byte-level BPE share: symbols are a linked list of
// byte runs of one text; a priority queue holds candidate neighbour pairs (each tokenizer
// orders them its own way: SPM by score, BPE by merge rank) and merging the best valid pair
// offers its new neighbour pairs again.
#pragma once

#include <cstddef>
#include <vector>

namespace lw {

struct MergeSymbol {
  int prev;
  int next;
  size_t start;  // byte offset in the text being merged
  size_t len;    // bytes; 0 once merged into its left neighbour
};

// Offers every initial neighbour pair through try_add(left, right), then merges until the
// agenda is empty. Agenda entries carry left, right and len (the merged bytes, which detects
// entries made stale by an earlier merge); try_add pushes a pair when the vocabulary has it
// and ignores indices < 0.
template <typename Agenda, typename TryAdd>
void merge_symbols(std::vector<MergeSymbol>& symbols, Agenda& agenda, TryAdd try_add) {
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!agenda.empty()) {
    const auto b = agenda.top();
    agenda.pop();
    MergeSymbol& left = symbols[b.left];
    MergeSymbol& right = symbols[b.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != b.len) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }
}

}  // namespace lw
