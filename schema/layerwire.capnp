# layerwire data plane: the RPC interfaces between a client (RemoteLayerExecutor) and a
# layer_server, and the wire tensor that carries hidden states. docs/WIRE_PROTOCOL.md is
# the prose version of this file; keep the two in step.
#
# Compatibility rules (never break these):
#   - Field and method ordinals (@N) are never renumbered, reused or retyped. New fields
#     and methods are only ever appended; removed ones are left in place, marked obsolete.
#   - LayerServer.handshake @0 and the first fields of HandshakeRequest / HandshakeResponse
#     (protocolVersion @0 in both) are frozen forever: every past and future client and
#     server can exchange them, so a version mismatch is always detected and named.
#   - protocolVersion below is bumped for any change a peer cannot safely ignore (a new
#     required field, a changed meaning). Additive, ignorable changes keep the version.
#   - Version negotiation is exact: the server refuses a handshake whose protocolVersion
#     differs from its own with LW-WIRE-007 "protocol version mismatch: client speaks N,
#     server speaks M"; a client refuses a response whose protocolVersion differs from its
#     own with the same code. Neither side ever calls other methods before that check.
#
# Errors: every failed call is a Cap'n Proto exception whose description starts with the
# stable code, "LW-XXX-NNN: message naming field and values" (schema/rpc_error.h). Type
# "overloaded" for budget/busy codes (kind Overloaded), "failed" for everything else.

@0xc89b17eed30407c1;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("lw::schema");

# The version this file defines. See the compatibility rules above.
const protocolVersion :UInt32 = 1;

# ---- tensors ------------------------------------------------------------------------

# Values are fixed: common/wire_codec.h WireDtype / WireEncoding use the same numbers.
enum Dtype {
  f32 @0;
  f16 @1;
  bf16 @2;
}

enum Encoding {
  raw @0;          # data = the raw bytes
  zstd @1;         # data = one zstd frame of the raw bytes, content size = rawSize
  shuffleZstd @2;  # data = one zstd frame of the byte-shuffled raw bytes
}

# A dense tensor. Raw bytes: elements row-major (last dim fastest), little-endian in
# `dtype`; rawSize = product(shape) * sizeof(dtype). xxh3 = XXH3_64bits(raw bytes), taken
# after dtype conversion and before shuffle/compression. Hidden states are [nTokens, dim].
struct Tensor {
  dtype @0 :Dtype;
  shape @1 :List(UInt64);
  encoding @2 :Encoding;
  rawSize @3 :UInt64;
  xxh3 @4 :UInt64;
  data @5 :Data;
}

# ---- handshake ----------------------------------------------------------------------

struct HandshakeRequest {
  protocolVersion @0 :UInt32;  # FROZEN: always field 0; the client's protocolVersion
  clientName @1 :Text;         # for logs, e.g. "layerwire-client 0.1.0 host-a"
  # Model identity the client expects. architecture is the detected preset name
  # ("mistral-7b", "magistral-small", "llama-generic"); empty = do not check.
  architecture @2 :Text;
  manifestDigest @3 :Text;     # 32 lowercase hex (xxh3-128 of manifest.json); must match
  authToken @4 :Data;          # empty when the client has none; compared in constant time
  # Formats the client can decode in replies, in order of preference. f32 and raw are
  # always acceptable even if not listed; the server never sends anything else.
  wantedDtypes @5 :List(Dtype);
  wantedEncodings @6 :List(Encoding);
}

struct Capabilities {
  dtypes @0 :List(Dtype);        # dtypes the server accepts in forward requests
  encodings @1 :List(Encoding);  # encodings the server accepts in forward requests
  backend @2 :Text;              # "cpu", "cuda"
  device @3 :Text;               # e.g. "NVIDIA H100 80GB HBM3 (0)", "cpu (16 threads)"
}

# The server's configured limits (docs/CONFIG.md); a request over a limit is refused with
# a typed error naming the limit. 0 never means "unlimited" here: every limit is set.
struct Limits {
  maxTokensPerCall @0 :UInt32;   # rows of one forward tensor
  maxMessageBytes @1 :UInt64;    # Cap'n Proto traversal limit for one incoming message
  maxSessions @2 :UInt32;        # open sessions over all clients
  kvBudgetTokens @3 :UInt64;     # KV cache tokens over all sessions
  sessionTtlSeconds @4 :UInt32;  # an idle session is closed after this
}

struct HandshakeResponse {
  protocolVersion @0 :UInt32;  # FROZEN: always field 0; the server's protocolVersion
  serverName @1 :Text;         # for logs: software version and host
  architecture @2 :Text;       # detected preset of the served model
  manifestDigest @3 :Text;     # 32 lowercase hex
  layerBegin @4 :UInt32;       # served layers [layerBegin, layerEnd)
  layerEnd @5 :UInt32;
  hiddenSize @6 :UInt32;       # dim of the hidden states forward takes and returns
  capabilities @7 :Capabilities;
  limits @8 :Limits;
}

# ---- interfaces ---------------------------------------------------------------------

# The bootstrap capability of a layer_server's RPC port. It holds no session state.
interface LayerServer {
  # FROZEN: method 0, kept stable forever. Checks protocol version, then auth token, then
  # manifest digest and architecture, in that order; the first mismatch fails the call
  # with its LW code. On success returns the server's description and `connection`, the
  # authenticated capability through which everything else is reached.
  handshake @0 (request :HandshakeRequest)
      -> (response :HandshakeResponse, connection :Connection);

  # Liveness without authentication: "ok", "loading" or "degraded" (+ reason). Reveals
  # nothing about the model.
  health @1 () -> (health :Health);
}

struct Health {
  status @0 :Text;  # "ok" | "loading" | "degraded"
  reason @1 :Text;  # empty when ok
}

# One authenticated client of a server, reachable only through a successful handshake.
# Dropping it (or disconnecting) closes every session opened through it. (Not named
# "Server": that name is taken by the generated C++ skeleton classes.)
interface Connection {
  # Opens a KV-cache session for up to maxTokens positions (<= the server's budget).
  # Overloaded (LW-KV-001) when the budget or maxSessions is exhausted.
  openSession @0 (maxTokens :UInt32) -> (session :Session, sessionId :UInt64);

  # The same fields as the handshake response plus live counters.
  info @1 () -> (info :ServerInfo);
}

struct ServerInfo {
  description @0 :HandshakeResponse;
  openSessions @1 :UInt32;
  kvUsedTokens @2 :UInt64;
  status @3 :Health;
}

# Server-side time of one forward call, in nanoseconds.
struct Timings {
  queueNs @0 :UInt64;    # waiting for the compute thread
  decodeNs @1 :UInt64;   # wire decode + checks of the request tensor
  computeNs @2 :UInt64;  # the layers
  encodeNs @3 :UInt64;   # wire encode of the reply tensor
  totalNs @4 :UInt64;    # from request arrival to reply
}

# One sequence's KV cache on the server. Dropping the capability closes it.
interface Session {
  # Runs the served layers on hidden [nTokens, hiddenSize] at positions
  # startPos .. startPos + nTokens - 1. startPos must equal the session's current length
  # (contiguous; LW-ENG-003 otherwise). The reply is in replyDtype (f32 instead when f16
  # would overflow) with an encoding the client listed in wantedEncodings (or raw).
  forward @0 (startPos :UInt32, hidden :Tensor, replyDtype :Dtype)
      -> (hidden :Tensor, timings :Timings, length :UInt32);

  # Rolls the KV cache back so the session holds positions [0, position); position must
  # be <= the current length.
  truncate @1 (position :UInt32) -> (length :UInt32);

  # Frees the session's KV now; later calls fail with LW-ENG-002.
  close @2 () -> ();
}
