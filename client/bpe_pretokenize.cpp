#include "client/bpe_pretokenize.h"

#include <cstdint>

#include "client/unicode.h"

namespace lw {
namespace {

// One decoded character of the text with the facts the pattern needs.
struct Char {
  size_t start;
  uint32_t len;
  char32_t cp;
  UnicodeClass cls;
  bool space;  // \s
};

bool is_letter(const Char& c) {
  return c.cls == UnicodeClass::kUpper || c.cls == UnicodeClass::kLower ||
         c.cls == UnicodeClass::kLetterOther;
}
bool is_newline(const Char& c) { return c.cp == '\r' || c.cp == '\n'; }
// [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
bool in_upper_set(const Char& c) {
  return c.cls == UnicodeClass::kUpper || c.cls == UnicodeClass::kLetterOther ||
         c.cls == UnicodeClass::kMark;
}
// [\p{Ll}\p{Lm}\p{Lo}\p{M}]
bool in_lower_set(const Char& c) {
  return c.cls == UnicodeClass::kLower || c.cls == UnicodeClass::kLetterOther ||
         c.cls == UnicodeClass::kMark;
}
// [^\r\n\p{L}\p{N}]
bool in_prefix_set(const Char& c) {
  return !is_newline(c) && !is_letter(c) && c.cls != UnicodeClass::kNumber;
}
// [^\s\p{L}\p{N}]
bool in_symbol_set(const Char& c) {
  return !c.space && !is_letter(c) && c.cls != UnicodeClass::kNumber;
}

class Matcher {
 public:
  explicit Matcher(const std::vector<Char>& chars) : c_(chars), n_(chars.size()) {}

  // The end (exclusive, in characters) of the match starting at i; always > i.
  size_t match(size_t i) const {
    size_t end;
    if (letters(i, false, &end)) return end;  // alternative 1
    if (letters(i, true, &end)) return end;   // alternative 2
    if (c_[i].cls == UnicodeClass::kNumber) return i + 1;
    if (symbols(i, &end)) return end;
    const size_t ws = run(i, [](const Char& c) { return c.space; });
    if (ws > i) {
      // \s*[\r\n]+ : backtracking \s* ends the match after the run's last newline.
      for (size_t k = ws; k > i; --k)
        if (is_newline(c_[k - 1])) return k;
      // \s+(?!\S) : the whole run at the end of the text, else all but its last character.
      if (ws == n_) return ws;
      if (ws - i >= 2) return ws - 1;
      return ws;  // \s+
    }
    return i + 1;  // unreachable: every character is a letter, mark, number, symbol or space
  }

 private:
  template <typename Pred>
  size_t run(size_t i, Pred pred) const {
    while (i < n_ && pred(c_[i])) ++i;
    return i;
  }

  // Alternative 1 (upper_first = false): P? U* W+ ; alternative 2 (true): P? U+ W*.
  // The optional prefix P is tried consumed first, then not, as a greedy `?` backtracks.
  bool letters(size_t i, bool upper_first, size_t* end) const {
    if (in_prefix_set(c_[i]) && body(i + 1, upper_first, end)) return true;
    return body(i, upper_first, end);
  }

  bool body(size_t s, bool upper_first, size_t* end) const {
    const size_t u = run(s, in_upper_set);
    if (upper_first) {  // U+ W* : W* after a maximal U+ always succeeds
      if (u == s) return false;
      *end = run(u, in_lower_set);
      return true;
    }
    // U* W+ : give back U characters one at a time until a W+ can start.
    for (size_t k = u + 1; k-- > s;) {
      if (k < n_ && in_lower_set(c_[k])) {
        *end = run(k, in_lower_set);
        return true;
      }
    }
    return false;
  }

  // " ?[^\s\p{L}\p{N}]+[\r\n/]*"
  bool symbols(size_t i, size_t* end) const {
    size_t s = i;
    if (c_[s].cp == ' ' && s + 1 < n_ && in_symbol_set(c_[s + 1])) ++s;
    if (!in_symbol_set(c_[s])) return false;
    const size_t e = run(s, in_symbol_set);
    *end = run(e, [](const Char& c) { return is_newline(c) || c.cp == '/'; });
    return true;
  }

  const std::vector<Char>& c_;
  size_t n_;
};

}  // namespace

std::vector<std::string_view> tekken_split(std::string_view text) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Unit u = utf8_decode(text, pos);
    // An invalid byte is a character of no class and not a space.
    const UnicodeClass cls = u.valid ? unicode_class(u.cp) : UnicodeClass::kOther;
    const bool space = u.valid && unicode_is_whitespace(u.cp);
    chars.push_back({pos, u.len, u.valid ? u.cp : char32_t{0xFFFFFFFF}, cls, space});
    pos += u.len;
  }
  std::vector<std::string_view> out;
  const Matcher matcher(chars);
  for (size_t i = 0; i < chars.size();) {
    const size_t end = matcher.match(i);
    const size_t from = chars[i].start;
    const size_t to = end < chars.size() ? chars[end].start : text.size();
    out.push_back(text.substr(from, to - from));
    i = end;
  }
  return out;
}

}  // namespace lw
