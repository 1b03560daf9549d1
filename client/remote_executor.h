// RemoteLayerExecutor: runs a model whose transformer layers live on layer servers. It owns
// the head (embedding, final norm, output matrix) on a local backend, connects and
// handshakes with every server of a ClientConfig, routes each forward pass through the
// servers' layer ranges in order, and fails over to a replica when a server dies or stops
// answering, rebuilding the replica's KV cache by replaying the session's tokens.
//
// Threading: an executor runs its own KJ event loop on the thread that constructs it; create,
// use and destroy it on that one thread, which must not hold another KJ event loop.
// No Cap'n Proto or KJ type appears in this header.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "client/client_config.h"
#include "client/sampler.h"
#include "fragments/arch.h"

namespace lw {

class Tokenizer;
class FragmentStore;

// Counters of one server (primaries and replicas that were used), since the last
// reset_stats().
struct ServerStats {
  std::string name;
  std::string rpc;
  int layer_begin = 0, layer_end = 0;  // [begin, end)
  uint64_t calls = 0;                  // forward calls answered
  uint64_t tokens = 0;                 // rows sent in those calls
  double round_trip_ms = 0;            // sum of client-side round trips of forward calls
  double server_ms = 0;                // sum of the servers' own totalNs
  double compute_ms = 0;               // sum of the servers' computeNs
  uint64_t raw_bytes_sent = 0, wire_bytes_sent = 0;
  uint64_t raw_bytes_received = 0, wire_bytes_received = 0;
  uint64_t failures = 0;               // transport failures seen on this server
};

struct ExecutorStats {
  std::vector<ServerStats> servers;  // route order; replicas that took over follow
  uint64_t failovers = 0;            // ranges moved to another server
  uint64_t replayed_tokens = 0;      // tokens replayed to rebuild KV caches
  double head_ms = 0;                // embedding + output on the local backend
  uint64_t raw_bytes() const;        // both directions, all servers
  uint64_t wire_bytes() const;
};

// One hop of the current route.
struct RouteHop {
  std::string server;  // the serving server's name (a replica after failover)
  std::string rpc;
  std::string http;
  int layer_begin = 0, layer_end = 0;  // [begin, end)
  std::string backend, device;
  uint32_t max_tokens_per_call = 0;
};

using SessionId = uint64_t;

struct GenerateOptions {
  uint32_t max_tokens = 128;   // tokens to generate at most
  bool add_bos = true;         // prepend BOS to a text prompt (generate() only)
  bool parse_special = false;  // match control tokens like [INST] in a text prompt
  bool stop_at_eos = true;     // stop when the model emits EOS (not counted in the text)
};

struct GenerateTimings {
  double ttft_ms = 0;       // prompt submitted -> first generated token sampled
  double prefill_ms = 0;    // the prompt's forward pass
  double decode_ms = 0;     // every later step
  double total_ms = 0;
  double prefill_tok_s = 0; // prompt tokens / prefill time
  double decode_tok_s = 0;  // decode steps / decode time
};

struct GenerateResult {
  std::string text;                    // the generated tokens' text
  std::vector<int32_t> prompt_tokens;  // what was sent as the prompt
  std::vector<int32_t> tokens;         // generated ids (EOS excluded)
  std::string finish_reason;           // "eos", "length", "stopped" (callback), "capacity"
  GenerateTimings timings;
  ExecutorStats stats;                 // of this generation only
};

// Called for each generated token with its id and the text it completes (may be empty
// while a UTF-8 sequence is incomplete). Return false to stop.
using TokenCallback = std::function<bool(int32_t id, const std::string& text)>;

class RemoteLayerExecutor {
 public:
  // Loads the head from config.fragments_dir, connects to every primary (and every replica
  // it can reach; an unreachable replica is retried at failover), handshakes, and builds
  // the route. Throws: LW-CLIENT-001 (a primary cannot be reached after the retries),
  // LW-WIRE-007 / LW-SRV-004 / LW-SRV-005 / LW-AUTH-00x (refused handshake, naming the
  // server and both values), LW-CLIENT-002 (missing layers, named), LW-CLIENT-003 (overlap or
  // a range other than the config's), LW-CLIENT-005 (hidden size differs from the store's).
  explicit RemoteLayerExecutor(const ClientConfig& config);
  ~RemoteLayerExecutor();
  RemoteLayerExecutor(const RemoteLayerExecutor&) = delete;
  RemoteLayerExecutor& operator=(const RemoteLayerExecutor&) = delete;

  const ModelParams& params() const;
  FragmentStore& store();
  // The model's tokenizer (built from the store's manifest on first use).
  const Tokenizer& tokenizer();
  std::vector<RouteHop> route() const;
  const ClientConfig& config() const;

  // Opens a session on every hop with config.session_max_tokens positions.
  SessionId open_session();
  // Frees the session on every server (best effort) and forgets it.
  void close_session(SessionId session);
  // Tokens the session holds (the next forward starts at this position).
  uint32_t session_length(SessionId session) const;

  // Runs `tokens` at the session's next positions through every hop (prefill is cut into
  // calls of at most the route's max tokens per call). Returns the logits, row-major f32:
  // all n rows (n x vocab) when all_logits, else only the last row (vocab). Token ids are
  // checked first (LW-ENG-001). LW-CLIENT-006 when the session would exceed
  // session_max_tokens. On a server's failure the range moves to the next server of its
  // group that answers (replicas in config order, then the failed server itself), whose KV
  // is rebuilt by replaying the session's tokens in the same call sizes, so results equal
  // an uninterrupted run; LW-CLIENT-004 naming the range and the servers tried when none
  // can take over. After any other error the session is unusable (close it).
  std::vector<float> forward(SessionId session, std::span<const int32_t> tokens,
                             bool all_logits = true);

  // Generation (client/generation.cpp). generate() encodes the prompt with the model's
  // tokenizer, opens a session, samples up to max_tokens tokens (streaming each to on_token)
  // and closes the session. generate_tokens() continues an open session: it forwards
  // `prompt` (new tokens after what the session holds) and samples the answer, leaving the
  // session open (chat keeps the conversation there). Sampling sees the session's whole
  // history for the repetition penalty.
  GenerateResult generate(const std::string& prompt, const SamplingParams& sampling,
                          const GenerateOptions& options, const TokenCallback& on_token = {});
  GenerateResult generate_tokens(SessionId session, std::span<const int32_t> prompt,
                                 const SamplingParams& sampling, const GenerateOptions& options,
                                 const TokenCallback& on_token = {});
  // Every token the session holds, oldest first.
  const std::vector<int32_t>& session_tokens(SessionId session) const;

  ExecutorStats stats() const;
  void reset_stats();

  // Test hook: called before each forward call to a server with (hop index, server name);
  // tests use it to kill a server at a chosen step. Empty = none.
  std::function<void(size_t hop, const std::string& server)> before_hop_call;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lw
