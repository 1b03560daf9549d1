// Configuration structs and their JSON parsing: the one place layerwire reads config JSON
// (STYLE.md 12). Each field has its default and a doc comment; docs/CONFIG.md lists them.
// Unknown keys and wrong types are refused naming the key (LW-JSON-002); values out of
// range are refused by *_validate naming the field and value (LW-CFG-001). Library code
// receives the plain structs and never sees nlohmann::json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace lw {

// One layer_server (config/server.json). Every field can be overridden by a flag of the
// same name with dashes (--kv-budget-tokens ...).
struct ServerConfig {
  // Folder holding manifest.json and (at least) the fragment files of `layers`.
  std::string fragments_dir = "fragments";
  // Layers served, "A-B" inclusive or "N"; empty = every layer of the model.
  std::string layers;
  // Cap'n Proto RPC listen address "host:port"; port 0 picks a free port.
  std::string rpc_listen = "127.0.0.1:7001";
  // HTTP control plane (/health, /metrics, /info) "host:port"; empty = no HTTP server.
  std::string http_listen = "127.0.0.1:7002";
  // Compute backend: "cpu" or "cuda".
  std::string backend = "cpu";
  // Device index for the cuda backend.
  int device = 0;
  // CPU backend threads; 0 = every core.
  unsigned threads = 0;
  // File holding the shared auth token (first line, surrounding whitespace ignored); empty =
  // no authentication. The file must not be readable by group or others.
  std::string auth_token_file;
  // KV cache budget in tokens over all sessions (the pool is allocated at startup).
  uint64_t kv_budget_tokens = 8192;
  // Tokens per KV cache block (1..256).
  uint32_t kv_block_size = 16;
  // Open sessions over all clients; one more is refused as overloaded (LW-SRV-001).
  uint32_t max_sessions = 64;
  // An idle session (no call for this long) is closed; 0 = never.
  uint32_t session_ttl_seconds = 600;
  // Rows (tokens) of one forward tensor; also the engine's batch size.
  uint32_t max_tokens_per_call = 2048;
  // Largest RPC message accepted, in bytes (Cap'n Proto reader limit).
  uint64_t max_message_bytes = 128ull << 20;
  // Forward calls waiting for the compute thread; one more is refused as overloaded.
  uint32_t max_queued_calls = 256;
  // On SIGTERM, the longest wait for the calls in flight to finish before they are cancelled;
  // 0 = cancel them at once.
  uint32_t drain_timeout_seconds = 30;
  // Reply compression: "auto" (shuffle+zstd when it pays), "off", "zstd", "shuffle-zstd";
  // only encodings the client listed in its handshake are ever used.
  std::string compression = "auto";
  // zstd level for replies (1 = fastest).
  int zstd_level = 1;
  // "auto" mode compresses only replies of at least this many raw bytes.
  uint64_t compress_min_bytes = 64 * 1024;
  // Threads hashing fragments at startup verification; 0 = every core.
  unsigned verify_jobs = 0;
  // spdlog level: trace, debug, info, warn, error, off.
  std::string log_level = "info";
  // Benchmark aid (docs/BENCHMARKS.md): "layers" runs the model; "noop" loads no weights
  // and returns the input hidden states unchanged, to measure the RPC path alone.
  std::string compute = "layers";
};

// Parses a JSON object into a ServerConfig; absent keys keep their defaults. `source`
// names the file in errors. Keys starting with '_' are comments and ignored. Throws
// LW-JSON-001 (not JSON / not an object) or LW-JSON-002 (unknown key, wrong type), naming
// the key.
ServerConfig server_config_from_json(const std::string& text, const std::string& source);
// Reads and parses a file (LW-IO-001 when it cannot be read).
ServerConfig server_config_load(const std::filesystem::path& path);
// Checks ranges and enumerations; throws LW-CFG-001 naming the field and value.
void server_config_validate(const ServerConfig& config);
// The config as JSON text (for logs, /info and round-trip tests; the token file path is
// included, the token never is).
std::string server_config_to_json(const ServerConfig& config);

}  // namespace lw
