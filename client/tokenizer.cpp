#include "client/tokenizer.h"

#include <algorithm>

#include "client/bpe.h"
#include "client/spm.h"
#include "client/unicode.h"
#include "common/error.h"
#include "fragments/gguf.h"

namespace lw {
namespace {

constexpr std::string_view kUnkSurface = " \xE2\x81\x87 ";  // " ⁇ ", as SentencePiece prints UNK

bool is_special_type(TokenType t) { return t == TokenType::kControl || t == TokenType::kUndefined; }

}  // namespace

Tokenizer::Tokenizer(TokenizerVocab vocab)
    : vocab_(std::move(vocab)), specials_(256), user_defined_(256) {
  by_text_.reserve(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    const std::string& text = vocab_.tokens[id];
    by_text_.emplace(text, id);
    const TokenType t = vocab_.types[id];
    if (!text.empty() &&
        (t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined)) {
      specials_[static_cast<unsigned char>(text[0])].push_back(id);
      if (t == TokenType::kUserDefined) {
        user_defined_[static_cast<unsigned char>(text[0])].push_back(id);
      }
    }
  }
  const auto longest_first = [&](int32_t a, int32_t b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  };
  for (auto& bucket : specials_) std::stable_sort(bucket.begin(), bucket.end(), longest_first);
  for (auto& bucket : user_defined_) std::stable_sort(bucket.begin(), bucket.end(), longest_first);
}

Tokenizer Tokenizer::from_metadata(const GgufMetadata& metadata, const std::string& source) {
  return Tokenizer(tokenizer_vocab_from_metadata(metadata, source));
}

Tokenizer Tokenizer::from_manifest(const Manifest& manifest, const std::string& source) {
  return from_metadata(manifest.metadata, source);
}

Tokenizer Tokenizer::from_store(const std::filesystem::path& dir) {
  return from_manifest(manifest_load(dir), (dir / kManifestFile).string());
}

Tokenizer Tokenizer::from_gguf(const std::filesystem::path& path) {
  const GgufFile file = GgufFile::open(path);
  return from_metadata(file.metadata(), path.string());
}

int32_t Tokenizer::match_special(std::string_view text, size_t pos, bool parse_special) const {
  const auto& buckets = parse_special ? specials_ : user_defined_;
  for (int32_t id : buckets[static_cast<unsigned char>(text[pos])]) {
    const std::string& t = vocab_.tokens[id];
    if (text.compare(pos, t.size(), t) == 0) return id;
  }
  return -1;
}

void Tokenizer::encode_raw(std::string_view fragment, std::vector<int32_t>& out) const {
  if (vocab_.kind == TokenizerKind::kSpm) {
    std::string escaped;
    escaped.reserve(fragment.size() + kSpmSpace.size() * 2);
    if (vocab_.add_space_prefix) escaped.append(kSpmSpace);
    for (char c : fragment) {
      if (c == ' ')
        escaped.append(kSpmSpace);
      else
        escaped.push_back(c);
    }
    spm_encode(vocab_, escaped, out);
  } else if (vocab_.add_space_prefix) {
    bpe_encode(vocab_, " " + std::string(fragment), out);
  } else {
    bpe_encode(vocab_, fragment, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos) {
    if (vocab_.bos < 0) {
      throw Error(ErrorCode::kTokMetadata,
                  "BOS requested but the vocabulary (tokenizer.ggml.bos_token_id) has none");
    }
    out.push_back(vocab_.bos);
  }
  size_t raw_begin = 0;
  for (size_t pos = 0; pos < text.size();) {
    const int32_t special = match_special(text, pos, parse_special);
    if (special < 0) {
      ++pos;
      continue;
    }
    if (pos > raw_begin) encode_raw(text.substr(raw_begin, pos - raw_begin), out);
    out.push_back(special);
    pos += vocab_.tokens[special].size();
    raw_begin = pos;
  }
  if (raw_begin < text.size()) encode_raw(text.substr(raw_begin), out);
  return out;
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_.size()) {
    throw Error(ErrorCode::kTokUnknownId, "token id " + std::to_string(id) +
                                              " is outside the vocabulary of " +
                                              std::to_string(vocab_.size()) + " tokens");
  }
}

void Tokenizer::decode_append(int32_t id, const DecodeOptions& options, DecodeState& state,
                              std::string& out) const {
  check_id(id);
  const TokenType type = vocab_.types[id];
  if (is_special_type(type)) {
    if (options.render_special) out.append(vocab_.tokens[id]);
    state.segment_start = true;
    return;
  }
  if (type == TokenType::kUnknown) {
    out.append(options.render_special ? std::string_view(vocab_.tokens[id]) : kUnkSurface);
    state.segment_start = false;
    return;
  }
  std::string_view s = vocab_.surface[id];
  if (state.segment_start && options.strip_space_prefix && vocab_.add_space_prefix && !s.empty() &&
      s[0] == ' ') {
    s.remove_prefix(1);
  }
  out.append(s);
  state.segment_start = false;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string out;
  DecodeState state;
  for (int32_t id : ids) decode_append(id, options, state, out);
  return out;
}

const std::string& Tokenizer::piece(int32_t id) const {
  check_id(id);
  return vocab_.tokens[id];
}

TokenType Tokenizer::type(int32_t id) const {
  check_id(id);
  return vocab_.types[id];
}

std::optional<int32_t> Tokenizer::find(std::string_view piece) const {
  const auto it = by_text_.find(piece);
  if (it == by_text_.end()) return std::nullopt;
  return it->second;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options)
    : tokenizer_(tokenizer), options_(options) {}

std::string StreamDecoder::push(int32_t id) {
  tokenizer_.decode_append(id, options_, state_, pending_);
  const size_t complete = utf8_complete_prefix(pending_);
  std::string out = pending_.substr(0, complete);
  pending_.erase(0, complete);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = std::move(pending_);
  pending_.clear();
  state_ = DecodeState{};
  return out;
}

}  // namespace lw
