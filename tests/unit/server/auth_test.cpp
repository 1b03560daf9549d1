// Token file loading (permissions, trimming, empty) and the handshake token check.
#include "server/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(AuthTest, LoadsTheFirstLineTrimmed) {
  test::TempDir dir;
  write_text_file(dir / "t", "  tok-en 1 \t\nsecond line\n");
  ::chmod((dir / "t").c_str(), 0600);
  EXPECT_EQ(auth_load_token(dir / "t"), "tok-en 1");
}

TEST(AuthTest, RefusesBadTokenFiles) {
  test::TempDir dir;
  EXPECT_EQ(code_of([&] { auth_load_token(dir / "missing"); }), ErrorCode::kAuthFile);
  write_text_file(dir / "open", "abc\n");
  ::chmod((dir / "open").c_str(), 0640);
  EXPECT_EQ(code_of([&] { auth_load_token(dir / "open"); }), ErrorCode::kAuthFile);
  write_text_file(dir / "empty", "   \n");
  ::chmod((dir / "empty").c_str(), 0600);
  EXPECT_EQ(code_of([&] { auth_load_token(dir / "empty"); }), ErrorCode::kAuthFile);
}

TEST(AuthTest, CheckRefusesMissingAndWrongTokens) {
  EXPECT_NO_THROW(auth_check("", ""));
  EXPECT_NO_THROW(auth_check("", "anything"));
  EXPECT_NO_THROW(auth_check("secret", "secret"));
  EXPECT_EQ(code_of([] { auth_check("secret", ""); }), ErrorCode::kAuthMissing);
  EXPECT_EQ(code_of([] { auth_check("secret", "secreT"); }), ErrorCode::kAuthWrong);
  EXPECT_EQ(code_of([] { auth_check("secret", "secret2"); }), ErrorCode::kAuthWrong);
  EXPECT_EQ(code_of([] { auth_check("secret", "sec"); }), ErrorCode::kAuthWrong);
  try {
    auth_check("secret", "guess-xyz");
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("guess"), std::string::npos) << e.what();
  }
}

TEST(AuthTest, EqualComparesEveryByte) {
  EXPECT_TRUE(auth_token_equal("abc", "abc"));
  EXPECT_FALSE(auth_token_equal("abc", "abd"));
  EXPECT_FALSE(auth_token_equal("abc", "xbc"));
  EXPECT_FALSE(auth_token_equal("abc", "abcabc"));  // a repeat of the token is not the token
  EXPECT_FALSE(auth_token_equal("abc", ""));
  EXPECT_TRUE(auth_token_equal("", ""));
}

}  // namespace
}  // namespace lw
