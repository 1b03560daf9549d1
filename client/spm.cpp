#include "client/spm.h"

#include <queue>
#include <string>
#include <unordered_map>

#include "client/symbol_merge.h"
#include "client/unicode.h"
#include "common/error.h"

namespace lw {
namespace {

using Symbol = MergeSymbol;

struct Bigram {
  int left;
  int right;
  float score;
  size_t len;  // bytes of the merged piece, to detect stale entries
};

// Highest score first; on ties the leftmost pair (SentencePiece's and llama.cpp's order).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmSession {
 public:
  SpmSession(const TokenizerVocab& vocab, std::string_view text, std::vector<int32_t>& out)
      : vocab_(vocab), text_(text), out_(out) {}

  void run() {
    for (size_t pos = 0; pos < text_.size();) {
      const size_t len = utf8_decode(text_, pos).len;
      const int index = static_cast<int>(symbols_.size());
      symbols_.push_back({index - 1, pos + len < text_.size() ? index + 1 : -1, pos, len});
      pos += len;
    }
    merge_symbols(symbols_, agenda_, [this](int left, int right) { try_add(left, right); });
    for (int i = symbols_.empty() ? -1 : 0; i >= 0; i = symbols_[i].next) {
      resegment(text_.substr(symbols_[i].start, symbols_[i].len));
    }
  }

 private:
  void try_add(int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view piece =
        text_.substr(symbols_[left].start, symbols_[left].len + symbols_[right].len);
    const auto it = vocab_.pieces.find(piece);
    if (it == vocab_.pieces.end()) return;
    agenda_.push({left, right, vocab_.scores[it->second], piece.size()});
    if (vocab_.types[it->second] == TokenType::kUnused) {
      rev_merge_.emplace(std::string(piece), symbols_[left].len);
    }
  }

  void resegment(std::string_view piece) {
    const auto it = vocab_.pieces.find(piece);
    if (it != vocab_.pieces.end() && vocab_.types[it->second] != TokenType::kUnused) {
      out_.push_back(it->second);
      return;
    }
    if (const auto m = rev_merge_.find(std::string(piece)); m != rev_merge_.end()) {
      const size_t left_len = m->second;
      resegment(piece.substr(0, left_len));
      resegment(piece.substr(left_len));
      return;
    }
    for (unsigned char byte : piece) {
      int32_t id = vocab_.byte_token[byte];
      if (id < 0) id = vocab_.unk;
      if (id < 0) {
        throw Error(ErrorCode::kTokUnencodable,
                    "byte 0x" + hex(byte) + " of \"" + std::string(piece) +
                        "\" has no byte token and the vocabulary has no UNK token");
      }
      out_.push_back(id);
    }
  }

  static std::string hex(unsigned char b) {
    static const char* digits = "0123456789ABCDEF";
    return {digits[b >> 4], digits[b & 15]};
  }

  const TokenizerVocab& vocab_;
  std::string_view text_;
  std::vector<int32_t>& out_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> agenda_;
  std::unordered_map<std::string, size_t> rev_merge_;  // unused piece -> bytes of its left part
};

}  // namespace

void spm_encode(const TokenizerVocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  SpmSession(vocab, text, out).run();
}

}  // namespace lw
