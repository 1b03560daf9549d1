#include "fragments/synth_vocab.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <unordered_set>

namespace lw {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// Common English words, roughly by frequency.
constexpr std::string_view kWords[] = {
    "the",     "of",       "and",      "to",       "a",        "in",       "is",       "it",
    "you",     "that",     "he",       "was",      "for",      "on",       "are",      "with",
    "as",      "I",        "his",      "they",     "be",       "at",       "one",      "have",
    "this",    "from",     "or",       "had",      "by",       "not",      "word",     "but",
    "what",    "some",     "we",       "can",      "out",      "other",    "were",     "all",
    "there",   "when",     "up",       "use",      "your",     "how",      "said",     "an",
    "each",    "she",      "which",    "do",       "their",    "time",     "if",       "will",
    "way",     "about",    "many",     "then",     "them",     "write",    "would",    "like",
    "so",      "these",    "her",      "long",     "make",     "thing",    "see",      "him",
    "two",     "has",      "look",     "more",     "day",      "could",    "go",       "come",
    "did",     "number",   "sound",    "no",       "most",     "people",   "my",       "over",
    "know",    "water",    "than",     "call",     "first",    "who",      "may",      "down",
    "side",    "been",     "now",      "find",     "any",      "new",      "work",     "part",
    "take",    "get",      "place",    "made",     "live",     "where",    "after",    "back",
    "little",  "only",     "round",    "man",      "year",     "came",     "show",     "every",
    "good",    "me",       "give",     "our",      "under",    "name",     "very",     "through",
    "just",    "form",     "sentence", "great",    "think",    "say",      "help",     "low",
    "line",    "differ",   "turn",     "cause",    "much",     "mean",     "before",   "move",
    "right",   "boy",      "old",      "too",      "same",     "tell",     "does",     "set",
    "three",   "want",     "air",      "well",     "also",     "play",     "small",    "end",
    "put",     "home",     "read",     "hand",     "port",     "large",    "spell",    "add",
    "even",    "land",     "here",     "must",     "big",      "high",     "such",     "follow",
    "act",     "why",      "ask",      "men",      "change",   "went",     "light",    "kind",
    "off",     "need",     "house",    "picture",  "try",      "us",       "again",    "animal",
    "point",   "mother",   "world",    "near",     "build",    "self",     "earth",    "father",
    "head",    "stand",    "own",      "page",     "should",   "country",  "found",    "answer",
    "school",  "grow",     "study",    "still",    "learn",    "plant",    "cover",    "food",
    "sun",     "four",     "between",  "state",    "keep",     "eye",      "never",    "last",
    "let",     "thought",  "city",     "tree",     "cross",    "farm",     "hard",     "start",
    "might",   "story",    "saw",      "far",      "sea",      "draw",     "left",     "late",
    "run",     "while",    "press",    "close",    "night",    "real",     "life",     "few",
    "north",   "open",     "seem",     "together", "next",     "white",    "children", "begin",
    "got",     "walk",     "example",  "ease",     "paper",    "group",    "always",   "music",
    "those",   "both",     "mark",     "often",    "letter",   "until",    "mile",     "river",
    "car",     "feet",     "care",     "second",   "book",     "carry",    "took",     "science",
    "eat",     "room",     "friend",   "began",    "idea",     "fish",     "mountain", "stop",
    "once",    "base",     "hear",     "horse",    "cut",      "sure",     "watch",    "color",
    "face",    "wood",     "main",     "enough",   "plain",    "girl",     "usual",    "young",
    "ready",   "above",    "ever",     "red",      "list",     "though",   "feel",     "talk",
    "bird",    "soon",     "body",     "dog",      "family",   "direct",   "pose",     "leave",
    "song",    "measure",  "door",     "product",  "black",    "short",    "numeral",  "class",
    "wind",    "question", "happen",   "complete", "ship",     "area",     "half",     "rock",
    "order",   "fire",     "south",    "problem",  "piece",    "told",     "knew",     "pass",
    "since",   "top",      "whole",    "king",     "space",    "heard",    "best",     "hour",
    "better",  "true",     "during",   "hundred",  "five",     "remember", "step",     "early",
    "hold",    "west",     "ground",   "interest", "reach",    "fast",     "verb",     "sing",
    "listen",  "six",      "table",    "travel",   "less",     "morning",  "ten",      "simple",
    "several", "toward",   "war",      "lay",      "against",  "pattern",  "slow",     "center",
    "love",    "person",   "money",    "serve",    "appear",   "road",     "map",      "rain",
    "rule",    "govern",   "pull",     "cold",     "notice",   "voice",    "unit",     "power",
    "town",    "fine",     "certain",  "fly",      "fall",     "lead",     "cry",      "dark",
    "machine", "note",     "wait",     "plan",     "figure",   "star",     "box",      "noun",
    "field",   "rest",     "correct",  "able",     "pound",    "done",     "beauty",   "drive",
    "stood",   "contain",  "front",    "teach",    "week",     "final",    "gave",     "green",
    "oh",      "quick",    "develop",  "ocean",    "warm",     "free",     "minute",   "strong",
    "special", "mind",     "behind",   "clear",    "tail",     "produce",  "fact",     "street",
    "inch",    "multiply", "nothing",  "course",   "stay",     "wheel",    "full",     "force",
    "blue",    "object",   "decide",   "surface",  "deep",     "moon",     "island",   "foot",
    "system",  "busy",     "test",     "record",   "boat",     "common",   "gold",     "possible",
    "plane",   "dry",      "wonder",   "laugh",    "thousand", "ago",      "ran",      "check",
    "game",    "shape",    "hello",    "model",    "layer",    "data",     "computer", "language",
    "network", "server",   "token",    "text",
};
constexpr std::string_view kCapitalized[] = {
    "The", "I",   "A",    "In",    "It", "This", "He",  "She", "We",    "They", "You", "What", "If",
    "And", "But", "When", "There", "As", "On",   "For", "My",  "Hello", "Once", "How", "Why",
};
constexpr std::string_view kSubwords[] = {
    "th",   "he",   "in",   "er",   "an",   "re",   "on",   "at",   "en",   "nd",   "ti",   "es",
    "or",   "te",   "of",   "ed",   "is",   "it",   "al",   "ar",   "st",   "to",   "nt",   "ng",
    "se",   "ha",   "as",   "ou",   "io",   "le",   "s",    "ing",  "ion",  "tion", "ment", "ness",
    "ly",   "ous",  "ive",  "est",  "ity",  "ful",  "less", "able", "ers",  "ies",  "ted",  "ation",
    "ally", "ence", "ance", "ight", "ould", "ough", "ther", "ever", "ight",
};
// Letters by English frequency: n-gram fills are enumerated in this order.
constexpr std::string_view kLetters = "etaoinshrdlcumwfgypbvkjxqz";
constexpr std::array<double, 26> kLetterFreq = {12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0,
                                                4.3,  4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
                                                1.9,  1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1};

size_t utf8_chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

class Builder {
 public:
  explicit Builder(uint32_t size) : size_(size) {
    vocab_.tokens.reserve(size);
    vocab_.scores.reserve(size);
    vocab_.types.reserve(size);
    seen_.reserve(size * 2);
  }
  bool full() const { return vocab_.tokens.size() >= size_; }
  void special(std::string token, SynthTokenType type) {
    if (full()) return;
    seen_.insert(token);
    vocab_.tokens.push_back(std::move(token));
    vocab_.scores.push_back(0.0f);
    vocab_.types.push_back(static_cast<int32_t>(type));
  }
  // A normal piece; its score is a unigram-style log probability from its rank, spread over
  // its length so longer and earlier (commoner) pieces score higher.
  void piece(const std::string& token) {
    if (full() || !seen_.insert(token).second) return;
    const double rank = static_cast<double>(vocab_.tokens.size() - kSynthFirstPiece);
    vocab_.tokens.push_back(token);
    vocab_.scores.push_back(static_cast<float>(-std::log(rank + 2.0) / utf8_chars(token)));
    vocab_.types.push_back(static_cast<int32_t>(SynthTokenType::kNormal));
  }
  // The piece and every prefix of it (prefixes first), so each step is a valid merge.
  void with_prefixes(std::string_view lead, std::string_view word) {
    for (size_t n = 1; n <= word.size(); ++n)
      piece(std::string(lead) + std::string(word.substr(0, n)));
  }
  SynthVocab take() { return std::move(vocab_); }

 private:
  uint32_t size_;
  SynthVocab vocab_;
  std::unordered_set<std::string> seen_;
};

// Letter n-grams over kLetters: likeliest first (by letter frequency) for n <= 4, then in
// kLetters order, which needs no table.
void ngrams(Builder& b, int n, std::string_view lead) {
  uint64_t count = 1;
  for (int i = 0; i < n; ++i) count *= 26;
  auto letter = [n](uint64_t code, int pos) {
    for (int i = n - 1; i > pos; --i) code /= 26;
    return code % 26;
  };
  std::vector<uint32_t> order;
  if (n <= 4) {
    order.resize(count);
    std::vector<float> weight(count);
    for (uint32_t i = 0; i < count; ++i) {
      order[i] = i;
      double w = 0;
      for (int p = 0; p < n; ++p) w += std::log(kLetterFreq[letter(i, p)]);
      weight[i] = static_cast<float>(w);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t c) { return weight[a] > weight[c]; });
  }
  std::string s;
  for (uint64_t i = 0; i < count && !b.full(); ++i) {
    const uint64_t code = order.empty() ? i : order[i];
    s.assign(lead);
    for (int p = 0; p < n; ++p) s.push_back(kLetters[letter(code, p)]);
    b.piece(s);
  }
}

}  // namespace

SynthVocab synth_vocab(uint32_t vocab_size) {
  Builder b(vocab_size);
  b.special("<unk>", SynthTokenType::kUnknown);
  b.special("<s>", SynthTokenType::kControl);
  b.special("</s>", SynthTokenType::kControl);
  char hex[8];
  for (int i = 0; i < 256; ++i) {
    std::snprintf(hex, sizeof(hex), "<0x%02X>", i);
    b.special(hex, SynthTokenType::kByte);
  }
  b.piece(std::string(kSpace));
  for (char c = '!'; c <= '~'; ++c) b.piece(std::string(1, c));
  for (char c : kLetters) b.piece(std::string(kSpace) + c);
  for (std::string_view w : kWords) b.with_prefixes(kSpace, w);
  for (std::string_view w : kCapitalized) b.with_prefixes(kSpace, w);
  for (std::string_view w : kSubwords) b.with_prefixes("", w);
  for (std::string_view w : kWords) b.with_prefixes("", w);  // word-internal pieces
  // Fill: n-grams of growing length, bare then space-led; every (n-1)-gram precedes them.
  for (int n = 2; !b.full(); ++n) {
    ngrams(b, n, "");
    ngrams(b, n, kSpace);
  }
  return b.take();
}

}  // namespace lw
