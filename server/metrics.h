// The layer_server's counters and its state as the control plane shows it: what the event
// loop and the compute thread record (forward latency histogram, tokens, raw vs wire bytes,
// sessions, KV use, errors by code) and the Prometheus text /metrics serves (names prefixed
// "layerwire_"). Thread-safe: writers and the HTTP threads take one mutex for short copies.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "common/wire_codec.h"

namespace lw {

// What the server serves, fixed once loading is done (shown by /info and the handshake).
struct ModelInfo {
  std::string preset;        // detected architecture: "mistral-7b", "llama-generic", ...
  std::string digest;        // manifest digest, 32 lowercase hex
  uint32_t n_layers = 0;     // layers of the whole model
  uint32_t layer_begin = 0;  // served layers [layer_begin, layer_end)
  uint32_t layer_end = 0;
  uint32_t hidden_size = 0;       // dim of the hidden states
  std::string backend;            // "cpu", "cuda"
  std::string device;             // backend description
  std::string compute;            // "layers" or "noop" (benchmark aid)
  uint64_t weight_bytes = 0;      // bytes of the served weights as stored
  uint64_t kv_budget_tokens = 0;  // the KV pool, in tokens (whole blocks)
};

enum class ServerPhase { Loading, Ok, Degraded, Draining, Failed };
// "loading", "ok", "degraded", "draining", "failed".
const char* server_phase_name(ServerPhase phase);

struct MetricsSnapshot {
  ServerPhase phase = ServerPhase::Loading;
  std::string reason;  // why not ok; empty when ok
  bool model_ready = false;
  ModelInfo model;

  // Forward calls that succeeded, their tokens, and their latency (arrival to reply).
  uint64_t forward_calls = 0;
  uint64_t forward_tokens = 0;
  static constexpr size_t kBuckets = 18;
  std::array<uint64_t, kBuckets> latency_counts{};  // per bucket (not cumulative)
  uint64_t latency_overflow = 0;                    // slower than the last bound
  double latency_sum_seconds = 0;
  WireStats received;  // request tensors
  WireStats sent;      // reply tensors

  uint64_t handshakes = 0;
  uint64_t connections_open = 0;
  uint64_t sessions_open = 0;
  uint64_t sessions_opened = 0;
  uint64_t sessions_expired = 0;
  uint64_t sessions_freed_on_disconnect = 0;
  uint64_t kv_used_tokens = 0;
  uint64_t calls_in_flight = 0;
  std::map<std::string, uint64_t> errors;  // by LW code ("transport" for codeless failures)
};

// Upper bounds of the forward latency histogram buckets, in seconds.
inline constexpr std::array<double, MetricsSnapshot::kBuckets> kLatencyBucketsSeconds = {
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3,
    25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0};

// What /health and LayerServer.health report: "loading" until the model is ready; "ok";
// "degraded" with a reason when the server is draining or failed, the KV budget has no free
// token left, or max_queued_calls calls wait for the compute thread.
struct HealthStatus {
  std::string status;  // "ok" | "loading" | "degraded"
  std::string reason;  // empty when ok
};
HealthStatus server_health(const MetricsSnapshot& s, uint64_t max_queued_calls);

class ServerMetrics {
 public:
  void set_phase(ServerPhase phase, const std::string& reason);
  void set_model(const ModelInfo& model);

  void record_forward(double seconds, uint64_t tokens, const WireStats& received,
                      const WireStats& sent);
  void record_error(const std::string& code);
  void record_handshake();
  void add_connections(int64_t delta);
  void add_in_flight(int64_t delta);
  void set_sessions(uint64_t open);
  void record_session_opened();
  void record_sessions_expired(uint64_t n);
  void record_sessions_freed_on_disconnect(uint64_t n);
  void set_kv_used_tokens(uint64_t tokens);

  MetricsSnapshot snapshot() const;
  // Prometheus text exposition format (version 0.0.4) of a snapshot.
  static std::string render_prometheus(const MetricsSnapshot& s);

 private:
  mutable std::mutex mu_;
  MetricsSnapshot s_;
};

}  // namespace lw
