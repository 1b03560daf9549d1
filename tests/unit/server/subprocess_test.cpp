// The layer_server binary as a subprocess: config file + flag overrides, ephemeral ports via
// --port-file, a forward over RPC, /health over HTTP, SIGTERM drains and exits 0; and the
// documented exit codes of bad command lines and configs.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "tests/unit/server/server_test_util.h"

namespace lw::test {
namespace {

constexpr uint32_t kDim = 256;

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

TEST(LayerServerBinaryTest, ServesOnEphemeralPortsAndDrainsOnSigterm) {
  SynthStore store("tiny", "q8_0", 2, 5);
  TempDir dir;
  // The file sets a fixed port; the flags override it with port 0.
  write_text_file(dir / "server.json",
                  "{\"fragments_dir\": \"" + store.path().string() +
                      "\", \"rpc_listen\": \"127.0.0.1:1\", \"threads\": 1, \"verify_jobs\": 1,"
                      " \"log_level\": \"warn\", \"_comment\": \"ignored\"}");
  const std::filesystem::path port_file = dir / "ports.json";
  ServerProcess proc({"--config", (dir / "server.json").string(), "--rpc-listen", "127.0.0.1:0",
                      "--http-listen", "127.0.0.1:0", "--port-file", port_file.string(),
                      "--max-tokens-per-call", "32"});
  ASSERT_GT(proc.pid(), 0);
  ASSERT_TRUE(
      eventually([&] { return std::filesystem::exists(port_file); }, std::chrono::seconds(30)));
  const auto ports = nlohmann::json::parse(read_text_file(port_file));
  const uint16_t rpc = ports["rpc_port"];
  const uint16_t http_port = ports["http_port"];
  EXPECT_EQ(ports["pid"], proc.pid());

  httplib::Client http("127.0.0.1", http_port);
  auto health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(nlohmann::json::parse(health->body)["status"], "ok");

  {
    auto io = kj::setupAsyncIo();
    TestClient c(io, rpc);
    HandshakeArgs a;
    a.digest = manifest_load(store.path()).digest.hex();
    ASSERT_FALSE(c.handshake(a).has_value());
    const size_t s = std::get<size_t>(c.open_session(64));
    // 20 rows: above the default of the test config, allowed by --max-tokens-per-call 32.
    EXPECT_EQ(ok(c.forward(s, 0, random_hidden(20 * kDim, 1))).length, 20u);
    // SIGTERM with the client still connected: the server drains and exits 0.
    proc.signal(SIGTERM);
    EXPECT_EQ(proc.wait_exit(std::chrono::seconds(20)), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(port_file));
}

TEST(LayerServerBinaryTest, ExitCodes) {
  const std::string exe = quoted(tool_path("layer_server"));
  CommandResult help = run_command(exe + " --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--kv-budget-tokens"), std::string::npos);
  EXPECT_NE(help.output.find("--port-file"), std::string::npos);
  EXPECT_NE(help.output.find("Exit codes"), std::string::npos);

  EXPECT_EQ(run_command(exe + " --no-such-flag").exit_code, 2);
  EXPECT_EQ(run_command(exe + " --max-sessions minus-one").exit_code, 2);

  TempDir dir;
  write_text_file(dir / "bad.json", "{\"max_sesions\": 3}");
  CommandResult unknown = run_command(exe + " --config " + quoted(dir / "bad.json"));
  EXPECT_EQ(unknown.exit_code, 3) << unknown.output;
  EXPECT_NE(unknown.output.find("LW-JSON-002"), std::string::npos) << unknown.output;
  EXPECT_NE(unknown.output.find("max_sesions"), std::string::npos) << unknown.output;

  CommandResult range = run_command(exe + " --kv-block-size 999 --print-config");
  EXPECT_EQ(range.exit_code, 3) << range.output;
  EXPECT_NE(range.output.find("LW-CFG-001"), std::string::npos) << range.output;

  CommandResult missing = run_command(exe + " --fragments-dir " + quoted(dir / "nothing") +
                                      " --rpc-listen 127.0.0.1:0 --http-listen ''");
  EXPECT_EQ(missing.exit_code, 3) << missing.output;
  EXPECT_NE(missing.output.find("LW-FRAG-006"), std::string::npos) << missing.output;

  CommandResult printed =
      run_command(exe + " --config " + quoted(dir / "bad.json") + " --print-config");
  EXPECT_EQ(printed.exit_code, 3);
  write_text_file(dir / "good.json", "{\"max_sessions\": 3}");
  printed = run_command(exe + " --config " + quoted(dir / "good.json") +
                        " --zstd-level 5 --print-config");
  ASSERT_EQ(printed.exit_code, 0) << printed.output;
  const auto effective = nlohmann::json::parse(printed.output);
  EXPECT_EQ(effective["max_sessions"], 3);
  EXPECT_EQ(effective["zstd_level"], 5);
  EXPECT_EQ(effective["kv_budget_tokens"], 8192);
}

}  // namespace
}  // namespace lw::test
