// `layerwire tokenize` / `detokenize` as users run them, on a store split from the real
// Mistral v3 vocabulary (tests/data/tokenizer/mistral-v3-vocab-tiny.gguf): the printed ids are
// SentencePiece's own (see tests/data/tokenizer/spm_v3_golden.json), control tokens are parsed
// only with --special, detokenize inverts tokenize, and bad flags / ids give the documented
// exit codes and error codes.
#include <gtest/gtest.h>

#include <fstream>

#include "fragments/store.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

class TokenizeCommandTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    store_split(test::source_dir() / "tests" / "data" / "tokenizer" / "mistral-v3-vocab-tiny.gguf",
                *dir_ / "store", SplitOptions{});
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static test::CommandResult layerwire(const std::string& args) {
    return test::run_command(test::tool_path("layerwire").string() + " " + args);
  }
  static std::string store() { return (*dir_ / "store").string(); }
  static std::string write(const std::string& name, const std::string& text) {
    const auto path = *dir_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }
  static test::TempDir* dir_;
};
test::TempDir* TokenizeCommandTest::dir_ = nullptr;

TEST_F(TokenizeCommandTest, PrintsSentencePieceIds) {
  auto r = layerwire("tokenize --fragments " + store() + " --text 'Hello world' --bos");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ids: 1,23325,2294\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("23325  \xE2\x96\x81Hello"), std::string::npos) << r.output;

  // Newlines and byte fallback from a file; the piece table escapes control bytes.
  const std::string file = write("lines.txt", "line one\nline two");
  r = layerwire("tokenize --fragments " + store() + " --file " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ids: 2175,1392,781,1849,1757\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("<0x0A>"), std::string::npos) << r.output;
}

TEST_F(TokenizeCommandTest, ControlTokensOnlyWithSpecial) {
  auto r =
      layerwire("tokenize --fragments " + store() + " --text '[INST]Hello world[/INST]' --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("\"ids\":[3,"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"ids\":[1501,17057,29561,"), std::string::npos) << r.output;
  r = layerwire("tokenize --fragments " + store() +
                " --text '[INST]Hello world[/INST]' --special --bos --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"ids\":[1,3,23325,2294,4]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"pieces\":[\"<s>\",\"[INST]\",\"\xE2\x96\x81Hello\""),
            std::string::npos)
      << r.output;
}

TEST_F(TokenizeCommandTest, DetokenizeInvertsTokenize) {
  const std::string text = "Grüße, 日本語 and 😀 👨‍👩‍👧!";
  const std::string file = write("utf8.txt", text);
  auto r = layerwire("tokenize --fragments " + store() + " --file " + file + " --bos");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("ids: ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string ids = r.output.substr(at + 5, r.output.find('\n', at) - at - 5);
  r = layerwire("detokenize --fragments " + store() + " --ids " + ids);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, text + "\n");
  r = layerwire("detokenize --fragments " + store() + " --ids 1,3,23325,2294,4 --special");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "<s>[INST]Hello world[/INST]\n");
}

TEST_F(TokenizeCommandTest, BadInputExitCodes) {
  auto r = layerwire("detokenize --fragments " + store() + " --ids 1,32768");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("LW-TOK-003"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("32768"), std::string::npos) << r.output;
  r = layerwire("detokenize --fragments " + store() + " --ids 1,x");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("LW-CLI-001"), std::string::npos) << r.output;
  r = layerwire("tokenize --fragments " + store());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--text or --file"), std::string::npos) << r.output;
  r = layerwire("tokenize --fragments " + store() + " --text a --file " + store());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = layerwire("tokenize --fragments " + store() + " --file " + store() + "/no-such-file");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("LW-IO-001"), std::string::npos) << r.output;
  // A folder that is no store: the manifest cannot be read.
  r = layerwire("tokenize --fragments " + dir_->path().string() + " --text a");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("LW-FRAG-006"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lw
