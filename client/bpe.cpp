#include "client/bpe.h"

#include <cstdio>
#include <queue>
#include <string>

#include "client/bpe_pretokenize.h"
#include "client/symbol_merge.h"
#include "client/unicode.h"
#include "common/error.h"

namespace lw {
namespace {

using Symbol = MergeSymbol;

struct Bigram {
  int left;
  int right;
  int32_t rank;
  size_t len;
};

// Lowest rank first; on ties the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

class BpeSession {
 public:
  BpeSession(const TokenizerVocab& vocab, std::vector<int32_t>& out) : vocab_(vocab), out_(out) {}

  void encode_word(std::string_view word) {
    mapped_.clear();
    symbols_.clear();
    for (unsigned char b : word) {
      const size_t start = mapped_.size();
      utf8_append(mapped_, bpe_byte_to_char(b));
      const int index = static_cast<int>(symbols_.size());
      symbols_.push_back({index - 1, index + 1, start, mapped_.size() - start});
    }
    if (symbols_.empty()) return;
    symbols_.back().next = -1;
    if (vocab_.ignore_merges) {
      if (const auto it = vocab_.pieces.find(mapped_); it != vocab_.pieces.end()) {
        out_.push_back(it->second);
        return;
      }
    }
    merge_symbols(symbols_, agenda_, [this](int left, int right) { try_add(left, right); });
    for (int i = 0; i >= 0; i = symbols_[i].next) emit(i);
  }

 private:
  std::string_view text(int i) const {
    return std::string_view(mapped_).substr(symbols_[i].start, symbols_[i].len);
  }

  void try_add(int left, int right) {
    if (left < 0 || right < 0) return;
    key_.assign(text(left));
    key_.push_back(' ');
    key_.append(text(right));
    const auto it = vocab_.merge_rank.find(key_);
    if (it == vocab_.merge_rank.end()) return;
    agenda_.push({left, right, it->second, symbols_[left].len + symbols_[right].len});
  }

  void emit(int i) {
    const std::string_view piece = text(i);
    if (const auto it = vocab_.pieces.find(piece); it != vocab_.pieces.end()) {
      out_.push_back(it->second);
      return;
    }
    // A merge produced no token (inconsistent merges): fall back to one token per byte.
    for (size_t pos = 0; pos < piece.size();) {
      const Utf8Unit u = utf8_decode(piece, pos);
      const int byte = bpe_char_to_byte(u.cp);
      const int32_t id = byte >= 0 ? vocab_.byte_token[byte] : -1;
      if (id < 0) {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02X", byte & 0xFF);
        throw Error(ErrorCode::kTokUnencodable, std::string("byte ") + hex + " of pre-token \"" +
                                                    std::string(piece) +
                                                    "\" has no token in the byte-level vocabulary");
      }
      out_.push_back(id);
      pos += u.len;
    }
  }

  const TokenizerVocab& vocab_;
  std::vector<int32_t>& out_;
  std::string mapped_;
  std::string key_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> agenda_;
};

}  // namespace

void bpe_encode_word(const TokenizerVocab& vocab, std::string_view word,
                     std::vector<int32_t>& out) {
  BpeSession(vocab, out).encode_word(word);
}

void bpe_encode(const TokenizerVocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  BpeSession session(vocab, out);
  for (std::string_view word : tekken_split(text)) session.encode_word(word);
}

}  // namespace lw
