// UTF-8 decoding, the Unicode class table the tekken pre-tokenizer uses, and the helper that
// keeps streamed text from ending inside a character.
#include <gtest/gtest.h>

#include "client/unicode.h"

namespace lw {
namespace {

TEST(Unicode, Classes) {
  EXPECT_EQ(unicode_version(), "14.0.0");
  EXPECT_EQ(unicode_class(U'A'), UnicodeClass::kUpper);
  EXPECT_EQ(unicode_class(0x01C5), UnicodeClass::kUpper);  // ǅ, titlecase (Lt)
  EXPECT_EQ(unicode_class(0x0391), UnicodeClass::kUpper);  // Greek capital alpha
  EXPECT_EQ(unicode_class(U'z'), UnicodeClass::kLower);
  EXPECT_EQ(unicode_class(0x00DF), UnicodeClass::kLower);        // ß
  EXPECT_EQ(unicode_class(0x65E5), UnicodeClass::kLetterOther);  // 日 (Lo)
  EXPECT_EQ(unicode_class(0x02B0), UnicodeClass::kLetterOther);  // ʰ (Lm)
  EXPECT_EQ(unicode_class(0x0301), UnicodeClass::kMark);         // combining acute (Mn)
  EXPECT_EQ(unicode_class(0x0903), UnicodeClass::kMark);         // Devanagari visarga (Mc)
  EXPECT_EQ(unicode_class(U'7'), UnicodeClass::kNumber);
  EXPECT_EQ(unicode_class(0x0663), UnicodeClass::kNumber);        // Arabic-Indic three (Nd)
  EXPECT_EQ(unicode_class(0x216B), UnicodeClass::kNumber);        // Ⅻ (Nl)
  EXPECT_EQ(unicode_class(0x00BD), UnicodeClass::kNumber);        // ½ (No)
  EXPECT_EQ(unicode_class(0x20000), UnicodeClass::kLetterOther);  // CJK extension B
  for (char32_t cp : {U' ', U'!', U'/', char32_t{0x1F600}, char32_t{0x10FFFF}, char32_t{0xE000}}) {
    EXPECT_EQ(unicode_class(cp), UnicodeClass::kOther) << std::hex << static_cast<uint32_t>(cp);
  }
  for (char32_t cp : {0x09, 0x0A, 0x0D, 0x20, 0x85, 0xA0, 0x2003, 0x2028, 0x3000}) {
    EXPECT_TRUE(unicode_is_whitespace(cp)) << std::hex << static_cast<uint32_t>(cp);
  }
  for (char32_t cp : {0x08, 0x41, 0x200B, 0x180E, 0xFEFF}) {
    EXPECT_FALSE(unicode_is_whitespace(cp)) << std::hex << static_cast<uint32_t>(cp);
  }
}

TEST(Unicode, Utf8Decode) {
  const std::string s = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80";
  const Utf8Unit a = utf8_decode(s, 0), e = utf8_decode(s, 1), ri = utf8_decode(s, 3),
                 smile = utf8_decode(s, 6);
  EXPECT_EQ(a.cp, U'a');
  EXPECT_EQ(e.cp, 0xE9u);
  EXPECT_EQ(e.len, 2u);
  EXPECT_EQ(ri.cp, 0x65E5u);
  EXPECT_EQ(ri.len, 3u);
  EXPECT_EQ(smile.cp, 0x1F600u);
  EXPECT_EQ(smile.len, 4u);
  // Invalid: stray continuation, overlong, surrogate, past U+10FFFF, truncated.
  for (const std::string bad :
       {"\x80", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE6\x97"}) {
    const Utf8Unit u = utf8_decode(bad, 0);
    EXPECT_FALSE(u.valid) << bad;
    EXPECT_EQ(u.len, 1u);
  }
  for (char32_t cp : {char32_t{0x24}, char32_t{0xA2}, char32_t{0x20AC}, char32_t{0x10348}}) {
    std::string out;
    utf8_append(out, cp);
    EXPECT_EQ(utf8_decode(out, 0).cp, cp);
    EXPECT_EQ(utf8_decode(out, 0).len, out.size());
  }
}

TEST(Unicode, CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix(""), 0u);
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("a\xF0"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xF0\x9F"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xF0\x9F\x98"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xF0\x9F\x98\x80"), 5u);
  EXPECT_EQ(utf8_complete_prefix("a\xC3"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xC3\xA9"), 3u);
  EXPECT_EQ(utf8_complete_prefix("a\x80"), 2u);  // a stray continuation byte never completes
  EXPECT_EQ(utf8_complete_prefix("a\xFF"), 2u);  // nor does an invalid lead byte
}

}  // namespace
}  // namespace lw
