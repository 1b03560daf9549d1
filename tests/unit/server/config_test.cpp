// ServerConfig JSON parsing and validation: defaults, every field round-trips, unknown keys
// and wrong types are refused naming the key, out-of-range values naming field and value.
#include "common/config.h"

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

template <typename F>
Error expect_error(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no lw::Error thrown";
  return Error(ErrorCode::kInternal, "none");
}

TEST(ServerConfigTest, EmptyObjectGivesTheDocumentedDefaults) {
  const ServerConfig c = server_config_from_json("{}", "t.json");
  EXPECT_EQ(c.fragments_dir, "fragments");
  EXPECT_EQ(c.rpc_listen, "127.0.0.1:7001");
  EXPECT_EQ(c.http_listen, "127.0.0.1:7002");
  EXPECT_EQ(c.kv_budget_tokens, 8192u);
  EXPECT_EQ(c.max_sessions, 64u);
  EXPECT_EQ(c.session_ttl_seconds, 600u);
  EXPECT_EQ(c.max_tokens_per_call, 2048u);
  EXPECT_EQ(c.max_message_bytes, 128ull << 20);
  EXPECT_EQ(c.drain_timeout_seconds, 30u);
  EXPECT_EQ(c.compression, "auto");
  EXPECT_NO_THROW(server_config_validate(c));
}

TEST(ServerConfigTest, ToJsonRoundTripsEveryField) {
  ServerConfig c;
  c.fragments_dir = "/srv/m";
  c.layers = "3-7";
  c.rpc_listen = "0.0.0.0:0";
  c.http_listen = "";
  c.backend = "cuda";
  c.device = 2;
  c.threads = 3;
  c.auth_token_file = "/etc/t";
  c.kv_budget_tokens = 100;
  c.kv_block_size = 32;
  c.max_sessions = 5;
  c.session_ttl_seconds = 0;
  c.max_tokens_per_call = 77;
  c.max_message_bytes = 5000;
  c.max_queued_calls = 9;
  c.drain_timeout_seconds = 4;
  c.compression = "zstd";
  c.zstd_level = -3;
  c.compress_min_bytes = 1;
  c.verify_jobs = 6;
  c.log_level = "debug";
  c.compute = "noop";
  const ServerConfig back = server_config_from_json(server_config_to_json(c), "rt");
  EXPECT_EQ(server_config_to_json(back), server_config_to_json(c));
  EXPECT_EQ(back.layers, "3-7");
  EXPECT_EQ(back.zstd_level, -3);
  EXPECT_EQ(back.drain_timeout_seconds, 4u);
}

TEST(ServerConfigTest, CommentKeysAreIgnored) {
  const ServerConfig c = server_config_from_json(
      "{\"_comment\": \"x\", \"_max_sessions\": [1], \"max_sessions\": 3}", "t.json");
  EXPECT_EQ(c.max_sessions, 3u);
}

TEST(ServerConfigTest, BadJsonIsRefusedNamingFileAndKey) {
  Error e = expect_error([] { server_config_from_json("{", "a.json"); });
  EXPECT_EQ(e.code(), ErrorCode::kJsonParse);
  EXPECT_NE(std::string(e.what()).find("a.json"), std::string::npos);

  e = expect_error([] { server_config_from_json("[1]", "a.json"); });
  EXPECT_EQ(e.code(), ErrorCode::kJsonParse);

  e = expect_error([] { server_config_from_json("{\"max_sesions\": 1}", "a.json"); });
  EXPECT_EQ(e.code(), ErrorCode::kJsonField);
  EXPECT_NE(std::string(e.what()).find("max_sesions"), std::string::npos);

  e = expect_error([] { server_config_from_json("{\"max_sessions\": \"4\"}", "a.json"); });
  EXPECT_EQ(e.code(), ErrorCode::kJsonField);
  EXPECT_NE(std::string(e.what()).find("max_sessions"), std::string::npos);

  e = expect_error([] { server_config_from_json("{\"max_sessions\": -1}", "a.json"); });
  EXPECT_EQ(e.code(), ErrorCode::kJsonField);

  e = expect_error([] { server_config_from_json("{\"max_sessions\": 5000000000}", "a.json"); });
  EXPECT_EQ(e.code(), ErrorCode::kJsonField);

  e = expect_error([] { server_config_from_json("{\"threads\": 1.5}", "a.json"); });
  EXPECT_EQ(e.code(), ErrorCode::kJsonField);
}

TEST(ServerConfigTest, OutOfRangeValuesAreRefusedNamingFieldAndValue) {
  struct Case {
    const char* field;
    void (*set)(ServerConfig&);
    const char* value;
  };
  const Case cases[] = {
      {"fragments_dir", [](ServerConfig& c) { c.fragments_dir = ""; }, "\"\""},
      {"rpc_listen", [](ServerConfig& c) { c.rpc_listen = "localhost"; }, "localhost"},
      {"rpc_listen", [](ServerConfig& c) { c.rpc_listen = "h:70000"; }, "70000"},
      {"http_listen", [](ServerConfig& c) { c.http_listen = ":80"; }, ":80"},
      {"backend", [](ServerConfig& c) { c.backend = "tpu"; }, "tpu"},
      {"device", [](ServerConfig& c) { c.device = -1; }, "-1"},
      {"kv_budget_tokens", [](ServerConfig& c) { c.kv_budget_tokens = 0; }, "0"},
      {"kv_block_size", [](ServerConfig& c) { c.kv_block_size = 512; }, "512"},
      {"max_sessions", [](ServerConfig& c) { c.max_sessions = 0; }, "0"},
      {"max_tokens_per_call", [](ServerConfig& c) { c.max_tokens_per_call = 0; }, "0"},
      {"max_message_bytes", [](ServerConfig& c) { c.max_message_bytes = 100; }, "100"},
      {"max_queued_calls", [](ServerConfig& c) { c.max_queued_calls = 0; }, "0"},
      {"compression", [](ServerConfig& c) { c.compression = "lz4"; }, "lz4"},
      {"zstd_level", [](ServerConfig& c) { c.zstd_level = 22; }, "22"},
      {"log_level", [](ServerConfig& c) { c.log_level = "loud"; }, "loud"},
      {"compute", [](ServerConfig& c) { c.compute = "fast"; }, "fast"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.field);
    ServerConfig c;
    k.set(c);
    const Error e = expect_error([&] { server_config_validate(c); });
    EXPECT_EQ(e.code(), ErrorCode::kCfgValue);
    EXPECT_NE(std::string(e.what()).find(k.field), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(k.value), std::string::npos) << e.what();
  }
}

TEST(ServerConfigTest, LoadNamesAMissingFile) {
  test::TempDir dir;
  const Error e = expect_error([&] { server_config_load(dir / "none.json"); });
  EXPECT_EQ(e.kind(), ErrorKind::Io);
  write_text_file(dir / "s.json", "{\"layers\": \"1-2\"}");
  EXPECT_EQ(server_config_load(dir / "s.json").layers, "1-2");
}

TEST(ServerConfigTest, TheExampleConfigParsesAndValidates) {
  const ServerConfig c = server_config_load(test::source_dir() / "config" / "server.json");
  EXPECT_NO_THROW(server_config_validate(c));
  EXPECT_EQ(c.rpc_listen, "127.0.0.1:7001");
}

}  // namespace
}  // namespace lw
