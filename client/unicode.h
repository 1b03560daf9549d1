// UTF-8 decoding and encoding, and the Unicode character classes the tokenizers need:
// letters split by case (Lu+Lt, Ll, Lm+Lo), marks (M), numbers (N) and White_Space. The class
// table (client/unicode_table.cpp) is generated from Unicode 14.0 by client/unicode_table_gen.py.
// Invalid UTF-8 is never an error here: each invalid byte is a one-byte unit of class kOther,
// so tokenizers can still represent it with byte tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lw {

enum class UnicodeClass : uint8_t {
  kOther = 0,
  kUpper = 1,        // Lu, Lt
  kLower = 2,        // Ll
  kLetterOther = 3,  // Lm, Lo (no case)
  kMark = 4,         // Mn, Mc, Me
  kNumber = 5,       // Nd, Nl, No
};

UnicodeClass unicode_class(char32_t cp);
inline bool unicode_is_letter(char32_t cp) {
  const UnicodeClass c = unicode_class(cp);
  return c == UnicodeClass::kUpper || c == UnicodeClass::kLower || c == UnicodeClass::kLetterOther;
}
inline bool unicode_is_number(char32_t cp) { return unicode_class(cp) == UnicodeClass::kNumber; }
// The White_Space property (what \s matches in Unicode-aware regex engines).
bool unicode_is_whitespace(char32_t cp);
// The Unicode version the class table was generated from, e.g. "14.0.0".
std::string_view unicode_version();

// One decoded unit of a UTF-8 string.
struct Utf8Unit {
  char32_t cp = 0;   // the code point; for an invalid byte, the byte value with `valid` false
  uint32_t len = 1;  // bytes consumed, 1..4
  bool valid = true;
};
// Decodes the unit starting at s[pos] (pos < s.size()). Overlong forms, surrogates, values past
// U+10FFFF and truncated sequences decode as one invalid byte.
Utf8Unit utf8_decode(std::string_view s, size_t pos);
// Appends the UTF-8 encoding of cp (cp <= 0x10FFFF, not checked for surrogates).
void utf8_append(std::string& out, char32_t cp);
// The length of the longest prefix of `s` that does not end inside a UTF-8 sequence that more
// bytes could still complete. Bytes that can never become valid count as complete.
size_t utf8_complete_prefix(std::string_view s);

namespace unicode_detail {
struct UnicodeRange {
  char32_t first;
  char32_t last;
  uint8_t cls;
};
extern const char* const kUnicodeVersion;
extern const UnicodeRange kUnicodeRanges[];
extern const size_t kUnicodeRangeCount;
}  // namespace unicode_detail

}  // namespace lw
