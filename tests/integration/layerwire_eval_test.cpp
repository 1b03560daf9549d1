// `layerwire eval` as users run it: on a tiny synthesized store, the logits file has
// n_tokens x vocab finite f32 values equal to the engine's logits computed in process;
// bad token ids and bad flags give the documented exit codes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/file_util.h"
#include "engine/model.h"
#include "fragments/store.h"
#include "fragments/synth.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

class LayerwireEvalTest : public testing::Test {
 protected:
  void SetUp() override {
    SynthOptions options;
    options.preset = "tiny";
    options.quant = "q4_k_m";
    options.layers = 2;
    options.seed = 4;
    synth_model(options, dir_ / "model.gguf");
    store_split(dir_ / "model.gguf", dir_ / "store", SplitOptions{});
  }
  test::CommandResult eval(const std::string& args) {
    return test::run_command(test::tool_path("layerwire").string() + " eval --fragments " +
                             (dir_ / "store").string() + " " + args);
  }
  test::TempDir dir_;
};

TEST_F(LayerwireEvalTest, LogitsFileEqualsInProcessEngine) {
  const std::vector<int32_t> tokens = {1, 15, 27, 300, 511, 2, 99};
  const auto out = dir_ / "logits.f32";
  const auto r = eval("--tokens 1,15,27,300,511,2,99 --threads 2 --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 7 x 512 f32 logits"), std::string::npos) << r.output;

  std::ifstream f(out, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  FragmentStore store = FragmentStore::open(dir_ / "store");
  const size_t vocab = store.manifest().params.vocab_size;
  ASSERT_EQ(bytes.size(), tokens.size() * vocab * sizeof(float));
  std::vector<float> file_logits(tokens.size() * vocab);
  std::memcpy(file_logits.data(), bytes.data(), bytes.size());
  for (float x : file_logits) ASSERT_TRUE(std::isfinite(x));

  CpuBackend backend(2);
  Model model(store, backend);
  const std::vector<float> want = model.eval(tokens);
  // Same code, same thread count: the same numbers (tolerance only for summation order).
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (file_logits[i] - want[i]) * (file_logits[i] - want[i]);
    den += want[i] * want[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-6);
  // The printed argmax of the last position matches.
  size_t best = 0;
  const float* last = want.data() + (tokens.size() - 1) * vocab;
  for (size_t i = 1; i < vocab; ++i)
    if (last[i] > last[best]) best = i;
  EXPECT_NE(r.output.find("       6       99 " + std::string(8 - std::to_string(best).size(), ' ') +
                          std::to_string(best)),
            std::string::npos)
      << r.output;
}

TEST_F(LayerwireEvalTest, BadInputExitCodes) {
  auto r = eval("--tokens 1,512");  // vocab is 512
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("LW-ENG-001"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("512"), std::string::npos) << r.output;
  r = eval("--tokens 1,abc");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("LW-CLI-001"), std::string::npos) << r.output;
  r = eval("--tokens 1 --backend tpu");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("LW-BACKEND-001"), std::string::npos) << r.output;
  r = eval("--tokens 1 --no-such-flag");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = test::run_command(test::tool_path("layerwire").string() + " eval --fragments " +
                        (dir_ / "missing").string() + " --tokens 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;  // CLI11 checks the folder exists
  r = test::run_command(test::tool_path("layerwire").string() + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("eval"), std::string::npos);
  EXPECT_NE(r.output.find("bench"), std::string::npos);
}

TEST_F(LayerwireEvalTest, BenchRunsOnTinyStore) {
  const auto r = test::run_command(test::tool_path("layerwire").string() + " bench --fragments " +
                                   (dir_ / "store").string() +
                                   " -p 8 -n 4 --reps 1 --bw-mib 8 --threads 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"pp8\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"tg4\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("decode_bandwidth_fraction"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lw

namespace lw {
namespace {

// Every subcommand's --help shows its own examples (when it has any) and the exit codes once,
// never the top-level footer it would otherwise inherit.
TEST(LayerwireHelpTest, SubcommandHelpKeepsItsExamplesAndExitCodesOnce) {
  for (const char* cmd : {"eval", "bench", "tokenize", "detokenize", "generate", "chat", "status"}) {
    const auto r = test::run_command(test::tool_path("layerwire").string() + " " + cmd + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    size_t count = 0;
    for (size_t at = r.output.find("Exit codes:"); at != std::string::npos;
         at = r.output.find("Exit codes:", at + 1)) {
      ++count;
    }
    EXPECT_EQ(count, 1u) << cmd << ":\n" << r.output;
    EXPECT_EQ(r.output.find("Run \"layerwire COMMAND --help\""), std::string::npos)
        << cmd << " shows the top-level footer:\n" << r.output;
  }
  const auto eval = test::run_command(test::tool_path("layerwire").string() + " eval --help");
  EXPECT_NE(eval.output.find("Examples:"), std::string::npos) << eval.output;
}

TEST(LayerwireHelpTest, DetokenizeErrorsNameTheIdsFlag) {
  test::TempDir dir;  // the ids are checked before the store is opened
  const auto r = test::run_command(test::tool_path("layerwire").string() +
                                   " detokenize --fragments " + dir.path().string() + " --ids 1,x");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--ids: item 1 (\"x\")"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lw
