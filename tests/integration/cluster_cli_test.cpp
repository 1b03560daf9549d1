// The cluster commands as users run them, against two layer_server subprocesses: generate
// --json gives the same greedy tokens as the library, generate streams then reports timings,
// status shows both servers healthy with matching digests (and fails for a dead one),
// bench --config reports pp / tg, chat answers two turns, and --launch-plan gives
// cluster.sh the layer_server flags of "local" servers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "client/remote_executor.h"
#include "tests/integration/cluster_test_util.h"

namespace lw {
namespace {

class ClusterCliTest : public testing::Test {
 protected:
  void SetUp() override {
    store_ = test::make_tiny_store(dir_, "store");
    a_ = std::make_unique<test::LayerServerProcess>(
        dir_, "a", std::vector<std::string>{"--fragments-dir", store_.string(), "--layers", "0-1"});
    b_ = std::make_unique<test::LayerServerProcess>(
        dir_, "b", std::vector<std::string>{"--fragments-dir", store_.string(), "--layers", "2-3"});
    ASSERT_TRUE(a_->running() && b_->running());
    config_ = dir_ / "client.json";
    std::ofstream(config_) << R"({"fragments_dir": "store", "head_threads": 1,
      "servers": [{"name": "a", "rpc": ")" << a_->rpc() << R"(", "http": ")" << a_->http()
                           << R"(", "layers": "0-1"},
                  {"name": "b", "rpc": ")" << b_->rpc() << R"(", "http": ")" << b_->http()
                           << R"(", "local": {"threads": 1}}]})";
  }
  test::CommandResult lw(const std::string& args) {
    return test::run_command(test::tool_path("layerwire").string() + " " + args);
  }

  test::TempDir dir_;
  std::filesystem::path store_, config_;
  std::unique_ptr<test::LayerServerProcess> a_, b_;
};

TEST_F(ClusterCliTest, GenerateJsonEqualsLibraryGreedyRun) {
  const auto r = lw("generate --config " + config_.string() +
                    " --tokens 1,15,27,300 -n 12 --greedy --ignore-eos --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  const std::vector<int32_t> cli_tokens = j["tokens"].get<std::vector<int32_t>>();

  RemoteLayerExecutor ex(client_config_load(config_));
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.repeat_penalty = 1;
  GenerateOptions o;
  o.max_tokens = 12;
  o.stop_at_eos = false;
  const SessionId s = ex.open_session();
  const std::vector<int32_t> prompt = {1, 15, 27, 300};
  EXPECT_EQ(cli_tokens, ex.generate_tokens(s, prompt, greedy, o).tokens);
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_GT(j["timings"]["ttft_ms"].get<double>(), 0.0);
  EXPECT_GT(j["timings"]["decode_tok_s"].get<double>(), 0.0);
  ASSERT_EQ(j["servers"].size(), 2u);
  EXPECT_EQ(j["servers"][0]["calls"], 12);  // 1 prefill + 11 decode steps
  // 4 + 11 tokens, dim 256, f32, each way.
  EXPECT_EQ(j["servers"][1]["raw_bytes_sent"], 15 * 256 * 4);
}

TEST_F(ClusterCliTest, GenerateStreamsThenPrintsTimings) {
  const auto r = lw("generate -c " + config_.string() + " -p \"Hello world\" -n 8 --greedy");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("Hello world", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("time to first token"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("prefill"), std::string::npos) << r.output;
  const auto bad = lw("generate -c " + config_.string() + " -n 8");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("LW-CLI-001"), std::string::npos) << bad.output;
}

TEST_F(ClusterCliTest, StatusShowsHealthAndDigestAndFailsForADeadServer) {
  auto r = lw("status -c " + config_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* needle : {"a ", "b ", "0-1", "2-3", " ok ", "match", "/8192"}) {
    EXPECT_NE(r.output.find(needle), std::string::npos) << needle << " in\n" << r.output;
  }
  b_->stop(SIGKILL);
  r = lw("status -c " + config_.string() + " --timeout-ms 500");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("unreachable"), std::string::npos) << r.output;
}

TEST_F(ClusterCliTest, BenchConfigReportsPpTgAndHops) {
  const auto r = lw("bench --config " + config_.string() + " -p 16 -n 4 --reps 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_GT(j["tests"]["pp16"]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["tests"]["tg4"]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_EQ(j["tests"]["tg4"]["raw_bytes_per_token"].get<double>(), 2 * 2 * 256 * 4);
  EXPECT_EQ(j["tests"]["tg4"]["hops"].size(), 2u);
  // --fragments and --config exclude each other.
  const auto both = lw("bench --config " + config_.string() + " --fragments " + store_.string());
  EXPECT_EQ(both.exit_code, 2) << both.output;
}

TEST_F(ClusterCliTest, ChatAnswersTwoTurns) {
  const auto r = test::run_command("printf 'Hello\\nAnd then?\\n/stats\\n' | " +
                                   test::tool_path("layerwire").string() + " chat -c " +
                                   config_.string() + " -n 6 --greedy --format plain");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  size_t prompts = 0;
  for (size_t at = r.output.find("> "); at != std::string::npos; at = r.output.find("> ", at + 1)) {
    ++prompts;
  }
  EXPECT_GE(prompts, 3u) << r.output;
  EXPECT_NE(r.output.find("time to first token"), std::string::npos) << r.output;
  // The synthesized vocabulary has no [INST]: the Mistral format is refused, not faked.
  const auto m = test::run_command("printf 'Hello\\n' | " + test::tool_path("layerwire").string() +
                                   " chat -c " + config_.string() + " -n 2 --greedy");
  EXPECT_EQ(m.exit_code, 3) << m.output;
  EXPECT_NE(m.output.find("LW-TOK-002"), std::string::npos) << m.output;
}

TEST_F(ClusterCliTest, LaunchPlanListsLocalServersOnly) {
  const auto r = lw("status -c " + config_.string() + " --launch-plan");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("a\t"), std::string::npos) << r.output;  // a is not "local"
  EXPECT_EQ(r.output.rfind("b\t", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("\t--fragments-dir=" + store_.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\t--rpc-listen=" + b_->rpc()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\t--threads=1"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lw
