// One Cap'n Proto connection from the client to a layer_server: TCP connect, two-party RPC,
// the handshake (protocol version, auth, digest, architecture checked on both sides), and
// the calls the client makes (openSession, info, forward, close), each bounded by a timeout.
// Internal to client/: RemoteLayerExecutor's public header never includes this file.
// Threading: everything runs on the RpcLoop's thread (the thread that created it), which
// waits on each call; nothing here is thread-safe.
#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "client/client_config.h"
#include "common/wire_codec.h"
#include "schema/layerwire.capnp.h"

namespace lw {

// The KJ event loop of one RemoteLayerExecutor, set up on the creating thread (a thread can
// hold only one KJ event loop).
struct RpcLoop {
  kj::AsyncIoContext io = kj::setupAsyncIo();
};

// What the client sends at handshake.
struct HandshakeParams {
  std::string client_name;
  std::string architecture;     // expected; empty = any
  std::string manifest_digest;  // 32 hex
  std::string auth_token;       // empty = none
  std::vector<WireEncoding> reply_encodings;  // what we decode in replies, in preference order
  uint32_t connect_timeout_ms = 5000;
  uint32_t call_timeout_ms = 60000;
};

// What the server announced (plain copy of HandshakeResponse).
struct ServerDescription {
  std::string server_name, architecture, manifest_digest, backend, device;
  int layer_begin = 0, layer_end = 0;
  uint32_t hidden_size = 0;
  std::vector<WireDtype> dtypes;         // accepted in requests
  std::vector<WireEncoding> encodings;   // accepted in requests
  uint32_t max_tokens_per_call = 0;
  uint64_t max_message_bytes = 0;
  uint32_t max_sessions = 0;
  uint64_t kv_budget_tokens = 0;
  uint32_t session_ttl_seconds = 0;
};

struct ForwardReply {
  std::vector<float> hidden;  // [n, hidden_size]
  uint32_t length = 0;        // the session's length after the call
  uint64_t server_total_ns = 0;
  uint64_t server_compute_ns = 0;
  WireStats received;
};

struct ServerInfoSnapshot {
  ServerDescription description;
  uint32_t open_sessions = 0;
  uint64_t kv_used_tokens = 0;
  std::string status, reason;
};

// Failures: a transport problem (refused, reset, disconnected, timeout, a reply without an
// LW code) throws LW-CLIENT-001 naming the server, its address and what happened — the
// executor fails over on these. An LW-coded error from the server is rethrown with its own
// code and the server's name prepended.
class ServerConnection {
 public:
  // Connects and handshakes (one attempt; the caller retries). Refuses a reply with another
  // protocol version (LW-WIRE-007), manifest digest (LW-SRV-004) or architecture
  // (LW-SRV-005), naming the server and both values.
  ServerConnection(RpcLoop& loop, const ServerSpec& spec, const HandshakeParams& params);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  const ServerSpec& spec() const { return spec_; }
  const ServerDescription& description() const { return description_; }
  // "name (host:port)" for messages.
  std::string label() const;

  // Opens a KV session for up to max_tokens positions; returns its local handle.
  uint32_t open_session(uint32_t max_tokens);
  // Frees a session (best effort: errors are ignored, the handle is dropped either way).
  void close_session(uint32_t handle);
  // Runs the server's layers for `request` (already encoded) at start_pos.
  ForwardReply forward(uint32_t handle, uint32_t start_pos, const WireTensor& request,
                       WireDtype reply_dtype, WireCodec& codec, uint64_t max_reply_bytes);
  ServerInfoSnapshot info();

 private:
  struct Rpc;
  [[noreturn]] void rethrow(const kj::Exception& e, const std::string& what);
  template <typename T>
  T wait(kj::Promise<T>&& promise, const std::string& what, uint32_t timeout_ms);

  RpcLoop& loop_;
  ServerSpec spec_;
  uint32_t call_timeout_ms_;
  ServerDescription description_;
  std::unique_ptr<Rpc> rpc_;
};

}  // namespace lw
