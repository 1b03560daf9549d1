// Tokenizer: text <-> token ids with a model's own vocabulary, built from the tokenizer.ggml.*
// metadata of a fragment store's manifest (or of a GGUF file). Two models: SentencePiece-style
// "llama" vocabularies (client/spm.h) and byte-level BPE "gpt2" vocabularies with the tekken
// pre-tokenizer (client/bpe.h). Control tokens ([INST], <s>) are matched in text only when
// asked (parse_special); user-defined tokens always. StreamDecoder turns generated ids into
// text incrementally without splitting UTF-8 sequences. Immutable after construction: one
// Tokenizer may be used from many threads; a StreamDecoder belongs to one stream.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/tokenizer_vocab.h"
#include "fragments/manifest.h"

namespace lw {

struct DecodeOptions {
  // Control tokens (<s>, [INST]) decode to their text; otherwise to nothing.
  bool render_special = false;
  // Vocabularies that add a space prefix when encoding (SentencePiece's dummy prefix): drop
  // one leading space from the first token after the start and after each control token, so
  // decode(encode(text)) == text.
  bool strip_space_prefix = true;
};

// Per-stream decoding state (whether the next token starts a segment).
struct DecodeState {
  bool segment_start = true;
};

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerVocab vocab);
  // `source` names the file or store in errors. Throws LW-TOK-001 / LW-TOK-002.
  static Tokenizer from_metadata(const GgufMetadata& metadata, const std::string& source);
  static Tokenizer from_manifest(const Manifest& manifest, const std::string& source);
  static Tokenizer from_store(const std::filesystem::path& dir);  // reads manifest.json only
  static Tokenizer from_gguf(const std::filesystem::path& path);

  // The ids of `text`. With add_bos, BOS first (LW-TOK-001 if the vocabulary has none). With
  // parse_special, control tokens written in the text become their ids; user-defined tokens
  // are always matched. Text between special tokens is encoded as if alone: SentencePiece
  // vocabularies give each such fragment its dummy-prefix space, as llama.cpp does. Never
  // adds EOS (callers append eos() where the format wants it). Invalid UTF-8 is encoded byte
  // by byte. Throws LW-TOK-004 when a byte cannot be represented.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // The text of `ids` (raw bytes; valid UTF-8 whenever the ids came from valid text).
  // Throws LW-TOK-003 naming the first id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;
  // Appends the text of one token to `out`, updating `state`; the step decode() repeats.
  void decode_append(int32_t id, const DecodeOptions& options, DecodeState& state,
                     std::string& out) const;

  // The token's stored text ("▁the", "<0x0A>", "[INST]"); LW-TOK-003 for an unknown id.
  const std::string& piece(int32_t id) const;
  TokenType type(int32_t id) const;
  // The id of the token whose stored text is exactly `piece` (the lowest such id), if any.
  std::optional<int32_t> find(std::string_view piece) const;

  TokenizerKind kind() const { return vocab_.kind; }
  int32_t n_vocab() const { return vocab_.size(); }
  int32_t bos() const { return vocab_.bos; }  // -1 when the vocabulary has none
  int32_t eos() const { return vocab_.eos; }
  int32_t unk() const { return vocab_.unk; }
  bool add_bos_default() const { return vocab_.add_bos; }  // tokenizer.ggml.add_bos_token
  bool add_eos_default() const { return vocab_.add_eos; }
  const TokenizerVocab& vocab() const { return vocab_; }

 private:
  void check_id(int32_t id) const;
  void encode_raw(std::string_view fragment, std::vector<int32_t>& out) const;
  // The longest special token matching text at `pos`, or -1.
  int32_t match_special(std::string_view text, size_t pos, bool parse_special) const;

  TokenizerVocab vocab_;
  StringIndex by_text_;  // every token's text -> lowest id
  // Tokens matched in text, by first byte, longest first: control, unknown and user-defined
  // (parse_special), and user-defined alone.
  std::vector<std::vector<int32_t>> specials_;
  std::vector<std::vector<int32_t>> user_defined_;
};

// Incremental decoding of a token stream: the concatenation of every push() and finish()
// equals decode() of all the ids with the same options, and no push() result ends inside a
// UTF-8 sequence that the next tokens could complete (a character split across byte tokens
// comes out whole). Holds a reference to the tokenizer, which must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, DecodeOptions options = {});
  // The text completed by this token (may be empty). LW-TOK-003 for an unknown id.
  std::string push(int32_t id);
  // The held-back bytes (an incomplete sequence at the end of the stream); resets the stream.
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  DecodeOptions options_;
  DecodeState state_;
  std::string pending_;
};

}  // namespace lw
