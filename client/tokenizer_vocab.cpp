#include "client/tokenizer_vocab.h"

#include <cstdio>

#include "client/unicode.h"
#include "common/error.h"

namespace lw {
namespace {

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kTokMetadata, source + ": " + what);
}

const GgufValue* find(const GgufMetadata& md, std::string_view key) {
  for (const auto& [k, v] : md)
    if (k == key) return &v;
  return nullptr;
}

const GgufArray* find_array(const GgufMetadata& md, const std::string& key,
                            const std::string& source, bool required) {
  const GgufValue* v = find(md, key);
  if (v == nullptr) {
    if (required) bad(source, "metadata key " + key + " is missing");
    return nullptr;
  }
  const GgufArray* a = v->get_array();
  if (a == nullptr) bad(source, "metadata key " + key + " is not an array");
  return a;
}

// An optional token id key; absent -> fallback. Must name a token of the vocabulary.
int32_t read_id(const GgufMetadata& md, const std::string& key, int32_t fallback, int32_t n_vocab,
                const std::string& source) {
  const GgufValue* v = find(md, key);
  if (v == nullptr) return fallback;
  int64_t id = -1;
  if (!v->get_i64(&id)) bad(source, "metadata key " + key + " is not an integer");
  if (id < 0 || id >= n_vocab) {
    bad(source, key + " = " + std::to_string(id) + " is outside the vocabulary of " +
                    std::to_string(n_vocab) + " tokens");
  }
  return static_cast<int32_t>(id);
}

bool read_flag(const GgufMetadata& md, const std::string& key, bool fallback,
               const std::string& source) {
  const GgufValue* v = find(md, key);
  if (v == nullptr) return fallback;
  if (v->type != GgufValueType::BOOL) bad(source, "metadata key " + key + " is not a bool");
  return std::get<bool>(v->value);
}

// "<0x4A>" -> 0x4A, or -1 when `text` is not of that form.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return -1;
    value = value * 16 + d;
  }
  return value;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

// Decodes byte-level BPE text (mapped characters) to bytes; false if a character maps to none.
bool bpe_unmap(std::string_view text, std::string* out) {
  out->clear();
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit u = utf8_decode(text, pos);
    const int b = u.valid ? bpe_char_to_byte(u.cp) : -1;
    if (b < 0) return false;
    out->push_back(static_cast<char>(b));
    pos += u.len;
  }
  return true;
}

void read_tokens(const GgufMetadata& md, const std::string& source, TokenizerVocab& v) {
  const GgufArray* tokens = find_array(md, "tokenizer.ggml.tokens", source, true);
  if (tokens->items.empty()) bad(source, "tokenizer.ggml.tokens is empty");
  if (tokens->items.size() > static_cast<size_t>(INT32_MAX)) {
    bad(source, "tokenizer.ggml.tokens has " + std::to_string(tokens->items.size()) + " entries");
  }
  const size_t n = tokens->items.size();
  v.tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string* s = tokens->items[i].get_string();
    if (s == nullptr)
      bad(source, "tokenizer.ggml.tokens[" + std::to_string(i) + "] is not a string");
    v.tokens.push_back(*s);
  }

  const bool spm = v.kind == TokenizerKind::kSpm;
  v.scores.assign(n, 0.0f);
  if (const GgufArray* scores = find_array(md, "tokenizer.ggml.scores", source, spm)) {
    if (scores->items.size() != n) {
      bad(source, "tokenizer.ggml.scores has " + std::to_string(scores->items.size()) +
                      " entries for " + std::to_string(n) + " tokens");
    }
    for (size_t i = 0; i < n; ++i) {
      double s = 0;
      if (!scores->items[i].get_f64(&s)) {
        bad(source, "tokenizer.ggml.scores[" + std::to_string(i) + "] is not a number");
      }
      v.scores[i] = static_cast<float>(s);
    }
  }
  v.types.assign(n, TokenType::kNormal);
  if (const GgufArray* types = find_array(md, "tokenizer.ggml.token_type", source, spm)) {
    if (types->items.size() != n) {
      bad(source, "tokenizer.ggml.token_type has " + std::to_string(types->items.size()) +
                      " entries for " + std::to_string(n) + " tokens");
    }
    for (size_t i = 0; i < n; ++i) {
      int64_t t = -1;
      if (!types->items[i].get_i64(&t) || t < 0 || t > 6) {
        bad(source, "tokenizer.ggml.token_type[" + std::to_string(i) +
                        "] is not a token type 0..6 (token \"" + v.tokens[i] + "\")");
      }
      v.types[i] = static_cast<TokenType>(t);
    }
  }
}

// Fills surface, pieces and byte_token, checking that every encodable token is unique.
void index_tokens(const std::string& source, TokenizerVocab& v) {
  v.byte_token.fill(-1);
  v.surface.resize(v.tokens.size());
  const bool spm = v.kind == TokenizerKind::kSpm;
  for (int32_t id = 0; id < v.size(); ++id) {
    const std::string& text = v.tokens[id];
    const TokenType type = v.types[id];
    std::string& surface = v.surface[id];
    const std::string where = "token " + std::to_string(id) + " \"" + text + "\"";
    switch (type) {
      case TokenType::kByte: {
        const int b = parse_byte_token(text);
        if (b < 0) bad(source, where + " has type byte but is not of the form <0xNN>");
        if (v.byte_token[b] >= 0) {
          bad(source, where + " repeats byte token " + std::to_string(v.byte_token[b]));
        }
        v.byte_token[b] = id;
        surface.assign(1, static_cast<char>(b));
        continue;
      }
      case TokenType::kControl:
      case TokenType::kUnknown:
      case TokenType::kUndefined:
        surface = text;
        continue;
      case TokenType::kUserDefined:
        surface = spm ? replace_all(text, kSpmSpace, " ") : text;
        break;
      case TokenType::kNormal:
      case TokenType::kUnused:
        if (spm) {
          surface = replace_all(text, kSpmSpace, " ");
        } else if (!bpe_unmap(text, &surface)) {
          bad(source, where + " is not byte-level BPE text (a character maps to no byte)");
        }
        break;
    }
    if (text.empty()) bad(source, where + " is empty");
    if (!v.pieces.emplace(text, id).second) {
      bad(source, where + " repeats token " + std::to_string(v.pieces.find(text)->second));
    }
  }
  if (!spm) {
    // Byte-level BPE: each byte is the token of its mapped character.
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      utf8_append(ch, bpe_byte_to_char(static_cast<uint8_t>(b)));
      const auto it = v.pieces.find(ch);
      if (it != v.pieces.end()) v.byte_token[b] = it->second;
    }
  }
}

void read_merges(const GgufMetadata& md, const std::string& source, TokenizerVocab& v) {
  const GgufArray* merges = find_array(md, "tokenizer.ggml.merges", source, true);
  v.merge_rank.reserve(merges->items.size());
  for (size_t i = 0; i < merges->items.size(); ++i) {
    const std::string* s = merges->items[i].get_string();
    const std::string where = "tokenizer.ggml.merges[" + std::to_string(i) + "]";
    if (s == nullptr) bad(source, where + " is not a string");
    const size_t space = s->find(' ');
    if (space == 0 || space == std::string::npos || space + 1 == s->size() ||
        s->find(' ', space + 1) != std::string::npos) {
      bad(source, where + " \"" + *s + "\" is not two tokens separated by one space");
    }
    // A repeated merge keeps its first (best) rank, as rank lookups in llama.cpp do.
    v.merge_rank.emplace(*s, static_cast<int32_t>(i));
  }
}

}  // namespace

TokenizerVocab tokenizer_vocab_from_metadata(const GgufMetadata& md, const std::string& source) {
  TokenizerVocab v;
  const GgufValue* model = find(md, "tokenizer.ggml.model");
  if (model == nullptr) bad(source, "metadata key tokenizer.ggml.model is missing");
  if (model->get_string() == nullptr) bad(source, "tokenizer.ggml.model is not a string");
  v.model = *model->get_string();
  if (const GgufValue* pre = find(md, "tokenizer.ggml.pre")) {
    if (pre->get_string() == nullptr) bad(source, "tokenizer.ggml.pre is not a string");
    v.pre = *pre->get_string();
  }
  if (v.model == "llama") {
    v.kind = TokenizerKind::kSpm;
  } else if (v.model == "gpt2") {
    v.kind = TokenizerKind::kBpe;
    if (v.pre != "tekken") {
      throw Error(ErrorCode::kTokUnsupported,
                  source + ": tokenizer.ggml.pre \"" + v.pre +
                      "\" is not supported for gpt2 vocabularies (supported: tekken)");
    }
    v.ignore_merges = true;  // tiktoken (Mistral's reference for tekken) takes whole tokens
  } else {
    throw Error(ErrorCode::kTokUnsupported, source + ": tokenizer.ggml.model \"" + v.model +
                                                "\" is not supported (supported: llama, gpt2)");
  }
  read_tokens(md, source, v);
  index_tokens(source, v);
  if (v.kind == TokenizerKind::kBpe) read_merges(md, source, v);

  const bool spm = v.kind == TokenizerKind::kSpm;
  const int32_t n = v.size();
  v.bos = read_id(md, "tokenizer.ggml.bos_token_id", spm && n > 1 ? 1 : -1, n, source);
  v.eos = read_id(md, "tokenizer.ggml.eos_token_id", spm && n > 2 ? 2 : -1, n, source);
  v.unk = read_id(md, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n, source);
  v.add_bos = read_flag(md, "tokenizer.ggml.add_bos_token", spm, source);
  v.add_eos = read_flag(md, "tokenizer.ggml.add_eos_token", false, source);
  v.add_space_prefix = read_flag(md, "tokenizer.ggml.add_space_prefix", spm, source);
  if (v.add_bos && v.bos < 0) bad(source, "tokenizer.ggml.add_bos_token is set but no BOS token");
  if (v.add_eos && v.eos < 0) bad(source, "tokenizer.ggml.add_eos_token is set but no EOS token");
  return v;
}

char32_t bpe_byte_to_char(uint8_t b) {
  // Printable bytes keep their value; the others take U+0100 + their rank among them.
  const auto printable = [](int c) {
    return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
  };
  if (printable(b)) return b;
  char32_t rank = 0;
  for (int c = 0; c < b; ++c) rank += !printable(c);
  return 0x100 + rank;
}

int bpe_char_to_byte(char32_t cp) {
  if (cp > 0x143) return -1;  // 256 + 68 non-printable bytes - 1
  static const auto table = [] {
    std::array<int16_t, 0x144> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[bpe_byte_to_char(static_cast<uint8_t>(b))] = b;
    return t;
  }();
  return table[cp];
}

}  // namespace lw
