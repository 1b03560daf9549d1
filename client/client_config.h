// ClientConfig: what a RemoteLayerExecutor needs to reach a cluster (config/client.json) —
// the fragment store holding the head, the layer servers (RPC + HTTP addresses, optional
// expected layer range, replicas, options for local runs by scripts/cluster.sh), auth, wire
// format, timeouts and retries. Parsed from JSON here and only here; docs/CONFIG.md
// ("## Client") documents every field and its default.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/wire_codec.h"

namespace lw {

// One layer server as the client reaches it.
struct ServerSpec {
  // Name used in messages and the status table; default "server-<N>" (replicas:
  // "<primary>-replica-<M>"). Unique over the whole config.
  std::string name;
  // Cap'n Proto RPC address "host:port" (port 1..65535). Required.
  std::string rpc;
  // HTTP control-plane address "host:port" (/health, /info for `layerwire status`); empty =
  // none.
  std::string http;
  // Expected served layers, "A-B" inclusive or "N"; empty = accept what the server
  // announces. Replicas inherit their primary's. Checked against the handshake.
  std::string layers;
  // scripts/cluster.sh only: extra layer_server options for a local run of this server, as
  // (key, value) pairs of ServerConfig keys (common/config.h), e.g. ("threads", "1"). A
  // server with a "local" object in JSON is started by `cluster.sh up`; others are not.
  bool local = false;
  std::vector<std::pair<std::string, std::string>> local_options;
};

// A layer range's servers: the primary, then replicas in failover order. Replicas must
// announce the same range as the primary.
struct ServerGroup {
  ServerSpec primary;
  std::vector<ServerSpec> replicas;
};

struct ClientConfig {
  // Fragment store with manifest.json and the head fragments (embedding, output); relative
  // paths are resolved against the config file's folder.
  std::string fragments_dir = "fragments";
  // Expected architecture preset ("mistral-7b", "magistral-small", "llama-generic");
  // empty = whatever the store holds (the manifest digest is checked regardless).
  std::string architecture;
  // At least one group; together their ranges must cover every layer exactly once.
  std::vector<ServerGroup> servers;
  // File with the shared auth token (first line, whitespace trimmed; must not be readable
  // by group or others); empty = send no token. Relative to the config file's folder.
  std::string auth_token_file;
  // Dtype of hidden states on the wire, both directions: f32 (exact), f16, bf16.
  WireDtype wire_dtype = WireDtype::F32;
  // Request compression: off, zstd (shuffle+zstd always), auto (shuffle+zstd only for large
  // tensors when it pays). Also decides which encodings the client accepts in replies.
  CompressionMode compression = CompressionMode::Auto;
  // zstd level for requests (1..19).
  int zstd_level = 1;
  // TCP connect + handshake limit per attempt, milliseconds.
  uint32_t connect_timeout_ms = 5000;
  // Limit for one RPC call (forward, open session...), milliseconds.
  uint32_t call_timeout_ms = 60000;
  // Extra attempts after a failed connect or an "overloaded" answer (0 = try once).
  uint32_t retries = 2;
  // Wait before the first retry, doubled for each next one up to backoff_max_ms.
  uint32_t backoff_ms = 100;
  uint32_t backoff_max_ms = 2000;
  // KV positions each session asks the servers for (prompt + generated tokens).
  uint32_t session_max_tokens = 2048;
  // Most tokens per forward call (prefill is cut into chunks); 0 = the smallest
  // maxTokensPerCall the servers announce.
  uint32_t max_tokens_per_call = 0;
  // Backend of the head (embedding, final norm, output): "cpu" or "cuda"; device index and
  // CPU threads (0 = every core).
  std::string head_backend = "cpu";
  int head_device = 0;
  unsigned head_threads = 0;

  // Every server, primaries and replicas, in config order (primary then its replicas).
  std::vector<const ServerSpec*> all_servers() const;
};

// Parses a JSON object; absent keys keep their defaults. `source` names the file in errors;
// relative paths are resolved against `base_dir`. Throws LW-JSON-001 (not JSON / not an
// object), LW-JSON-002 (unknown key, wrong type; names the key path, e.g.
// "servers[1].replicas[0].rpc") and LW-CFG-001 (a value out of range: names field and value).
ClientConfig client_config_from_json(const std::string& text, const std::string& source,
                                     const std::filesystem::path& base_dir = {});
// Reads and parses a file (LW-IO-001 when it cannot be read).
ClientConfig client_config_load(const std::filesystem::path& path);

// Splits "host:port" (host may be "[v6]"); throws LW-CFG-001 naming `field` and the value.
std::pair<std::string, uint16_t> parse_host_port(const std::string& address,
                                                 const std::string& field);

// Reads a token file: first line, whitespace trimmed. Throws LW-AUTH-003 when it cannot be
// read, is empty, or group/others may read or write it. The token never enters a message.
std::string client_load_token(const std::filesystem::path& file);

}  // namespace lw
