// ClientConfig parsing: a full config round-trips into the struct, defaults apply, and every
// kind of bad input gives its typed error naming the field (and value).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "client/client_config.h"
#include "common/error.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

ClientConfig parse(const std::string& text) {
  return client_config_from_json(text, "client.json", "/base");
}

// Expects parse(text) to throw `code` with a message containing every string of `needles`.
void expect_error(const std::string& text, ErrorCode code, std::vector<std::string> needles) {
  try {
    parse(text);
    ADD_FAILURE() << "no error for " << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
        << "missing \"" << n << "\" in " << e.what();
  }
}

TEST(ClientConfig, FullConfigParses) {
  const ClientConfig c = parse(R"({
    "fragments_dir": "frag", "architecture": "mistral-7b",
    "servers": [
      {"name": "a", "rpc": "10.0.0.1:7001", "http": "10.0.0.1:7002", "layers": "0-15",
       "local": {"threads": 2, "backend": "cpu"},
       "replicas": [{"rpc": "10.0.0.9:7001"}, {"name": "a2", "rpc": "[::1]:7005"}]},
      {"rpc": "10.0.0.2:7001", "layers": "16-31"}
    ],
    "auth_token_file": "token", "wire_dtype": "f16", "compression": "off",
    "zstd_level": 3, "connect_timeout_ms": 100, "call_timeout_ms": 200, "retries": 5,
    "backoff_ms": 10, "backoff_max_ms": 40, "session_max_tokens": 512,
    "max_tokens_per_call": 64, "head_backend": "cpu", "head_threads": 2
  })");
  EXPECT_EQ(c.fragments_dir, "/base/frag");
  EXPECT_EQ(c.auth_token_file, "/base/token");
  EXPECT_EQ(c.architecture, "mistral-7b");
  ASSERT_EQ(c.servers.size(), 2u);
  EXPECT_EQ(c.servers[0].primary.name, "a");
  EXPECT_EQ(c.servers[0].primary.http, "10.0.0.1:7002");
  EXPECT_TRUE(c.servers[0].primary.local);
  ASSERT_EQ(c.servers[0].primary.local_options.size(), 2u);
  ASSERT_EQ(c.servers[0].replicas.size(), 2u);
  EXPECT_EQ(c.servers[0].replicas[0].name, "a-replica-0");
  EXPECT_EQ(c.servers[0].replicas[0].layers, "0-15");  // inherited
  EXPECT_EQ(c.servers[0].replicas[1].name, "a2");
  EXPECT_EQ(c.servers[1].primary.name, "server-1");
  EXPECT_FALSE(c.servers[1].primary.local);
  EXPECT_EQ(c.all_servers().size(), 4u);
  EXPECT_EQ(c.wire_dtype, WireDtype::F16);
  EXPECT_EQ(c.compression, CompressionMode::Off);
  EXPECT_EQ(c.zstd_level, 3);
  EXPECT_EQ(c.connect_timeout_ms, 100u);
  EXPECT_EQ(c.call_timeout_ms, 200u);
  EXPECT_EQ(c.retries, 5u);
  EXPECT_EQ(c.backoff_ms, 10u);
  EXPECT_EQ(c.backoff_max_ms, 40u);
  EXPECT_EQ(c.session_max_tokens, 512u);
  EXPECT_EQ(c.max_tokens_per_call, 64u);
  EXPECT_EQ(c.head_threads, 2u);
}

TEST(ClientConfig, DefaultsApply) {
  const ClientConfig c = parse(R"({"servers": [{"rpc": "127.0.0.1:1"}]})");
  const ClientConfig d;
  EXPECT_EQ(c.fragments_dir, "/base/fragments");
  EXPECT_EQ(c.wire_dtype, d.wire_dtype);
  EXPECT_EQ(c.compression, CompressionMode::Auto);
  EXPECT_EQ(c.retries, d.retries);
  EXPECT_EQ(c.call_timeout_ms, d.call_timeout_ms);
  EXPECT_TRUE(c.auth_token_file.empty());
  EXPECT_EQ(c.servers[0].primary.name, "server-0");
}

TEST(ClientConfig, BadInputIsTyped) {
  expect_error("[1,2]", ErrorCode::kJsonParse, {"client.json", "object"});
  expect_error("{not json", ErrorCode::kJsonParse, {"client.json"});
  expect_error("{}", ErrorCode::kJsonField, {"servers"});
  expect_error(R"({"servers": []})", ErrorCode::kJsonField, {"servers"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "colour": 1})", ErrorCode::kJsonField,
               {"colour"});
  expect_error(R"({"servers": [{"http": "h:1"}]})", ErrorCode::kJsonField, {"servers[0].rpc"});
  expect_error(R"({"servers": [{"rpc": "h:1", "port": 3}]})", ErrorCode::kJsonField,
               {"servers[0].port"});
  expect_error(R"({"servers": [{"rpc": "h:1", "replicas": [{"rpc": "h:2", "layers": "1"}]}]})",
               ErrorCode::kJsonField, {"servers[0].replicas[0].layers"});
  expect_error(R"({"servers": [{"rpc": 7001}]})", ErrorCode::kJsonField,
               {"servers[0].rpc", "string"});
  expect_error(R"({"servers": [{"rpc": "nohost"}]})", ErrorCode::kCfgValue,
               {"servers[0].rpc", "nohost"});
  expect_error(R"({"servers": [{"rpc": "h:70000"}]})", ErrorCode::kCfgValue,
               {"servers[0].rpc", "70000"});
  expect_error(R"({"servers": [{"rpc": "h:1", "layers": "5-2"}]})", ErrorCode::kCfgValue,
               {"servers[0].layers", "5-2"});
  expect_error(R"({"servers": [{"rpc": "h:1", "local": {"threadz": 1}}]})",
               ErrorCode::kJsonField, {"threadz"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "wire_dtype": "f8"})", ErrorCode::kCfgValue,
               {"wire_dtype", "f8"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "compression": "lz4"})", ErrorCode::kCfgValue,
               {"compression", "lz4"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "retries": -1})", ErrorCode::kJsonField,
               {"retries"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "call_timeout_ms": 0})", ErrorCode::kCfgValue,
               {"call_timeout_ms"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "backoff_ms": 50, "backoff_max_ms": 10})",
               ErrorCode::kCfgValue, {"backoff_max_ms", "10"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "zstd_level": 30})", ErrorCode::kCfgValue,
               {"zstd_level", "30"});
  expect_error(R"({"servers": [{"rpc": "h:1"}], "head_backend": "tpu"})", ErrorCode::kCfgValue,
               {"head_backend", "tpu"});
  expect_error(R"({"servers": [{"name": "x", "rpc": "h:1"}, {"name": "x", "rpc": "h:2"}]})",
               ErrorCode::kCfgValue, {"\"x\""});
  expect_error(R"({"servers": [{"rpc": "h:1"}, {"rpc": "h:1"}]})", ErrorCode::kCfgValue,
               {"h:1"});
}

TEST(ClientConfig, HostPort) {
  EXPECT_EQ(parse_host_port("127.0.0.1:7001", "f"), (std::pair<std::string, uint16_t>{"127.0.0.1", 7001}));
  EXPECT_EQ(parse_host_port("[::1]:80", "f").first, "[::1]");
  for (const char* bad : {"", ":1", "h:", "h:0", "h:x", "::1:80", "[::1:80"}) {
    EXPECT_THROW(parse_host_port(bad, "f"), Error) << bad;
  }
}

TEST(ClientConfig, TokenFile) {
  test::TempDir dir;
  const auto path = dir / "token";
  {
    std::ofstream(path) << "  s3cret \nsecond line\n";
  }
  ::chmod(path.c_str(), 0644);
  try {
    client_load_token(path);
    ADD_FAILURE() << "world-readable token accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAuthFile);
    EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos);
  }
  ::chmod(path.c_str(), 0600);
  EXPECT_EQ(client_load_token(path), "s3cret");
  {
    std::ofstream(path) << " \n";
  }
  EXPECT_THROW(client_load_token(path), Error);
  EXPECT_THROW(client_load_token(dir / "missing"), Error);
}

TEST(ClientConfig, LoadResolvesAgainstTheFilesFolder) {
  test::TempDir dir;
  std::ofstream(dir / "c.json") << R"({"fragments_dir": "f", "servers": [{"rpc": "h:1"}]})";
  EXPECT_EQ(client_config_load(dir / "c.json").fragments_dir, (dir / "f").string());
  EXPECT_THROW(client_config_load(dir / "none.json"), Error);
}

}  // namespace
}  // namespace lw

namespace lw {
namespace {

// The shipped examples stay valid (they are documentation users copy).
TEST(ClientConfig, ShippedExamplesParse) {
  const ClientConfig c = client_config_load(test::source_dir() / "config" / "client.json");
  ASSERT_EQ(c.servers.size(), 2u);
  EXPECT_EQ(c.servers[0].replicas.size(), 1u);
  EXPECT_EQ(c.wire_dtype, WireDtype::F16);
  const ClientConfig d =
      client_config_load(test::source_dir() / "config" / "demo-cluster.json");
  ASSERT_EQ(d.servers.size(), 2u);
  EXPECT_TRUE(d.servers[0].primary.local);
  EXPECT_EQ(d.servers[0].primary.layers, "0-1");
  EXPECT_EQ(d.servers[1].primary.layers, "2-3");
}

}  // namespace
}  // namespace lw
