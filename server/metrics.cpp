#include "server/metrics.h"

#include <cstdio>
#include <string>

namespace lw {

const char* server_phase_name(ServerPhase phase) {
  switch (phase) {
    case ServerPhase::Loading:
      return "loading";
    case ServerPhase::Ok:
      return "ok";
    case ServerPhase::Degraded:
      return "degraded";
    case ServerPhase::Draining:
      return "draining";
    case ServerPhase::Failed:
      return "failed";
  }
  return "unknown";
}

HealthStatus server_health(const MetricsSnapshot& s, uint64_t max_queued_calls) {
  switch (s.phase) {
    case ServerPhase::Loading:
      return {"loading", s.reason.empty() ? "loading the model" : s.reason};
    case ServerPhase::Draining:
    case ServerPhase::Failed:
    case ServerPhase::Degraded:
      return {"degraded", std::string(server_phase_name(s.phase)) + ": " + s.reason};
    case ServerPhase::Ok:
      break;
  }
  if (s.model.kv_budget_tokens != 0 && s.kv_used_tokens >= s.model.kv_budget_tokens) {
    return {"degraded", "KV cache budget full: " + std::to_string(s.kv_used_tokens) + " of " +
                            std::to_string(s.model.kv_budget_tokens) + " tokens in use"};
  }
  if (s.calls_in_flight >= max_queued_calls) {
    return {"degraded",
            "compute queue full: " + std::to_string(s.calls_in_flight) +
                " calls in flight, max_queued_calls = " + std::to_string(max_queued_calls)};
  }
  return {"ok", ""};
}

void ServerMetrics::set_phase(ServerPhase phase, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.phase = phase;
  s_.reason = reason;
}

void ServerMetrics::set_model(const ModelInfo& model) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.model = model;
  s_.model_ready = true;
}

void ServerMetrics::record_forward(double seconds, uint64_t tokens, const WireStats& received,
                                   const WireStats& sent) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.forward_calls += 1;
  s_.forward_tokens += tokens;
  s_.latency_sum_seconds += seconds;
  size_t b = 0;
  while (b < kLatencyBucketsSeconds.size() && seconds > kLatencyBucketsSeconds[b]) ++b;
  if (b == kLatencyBucketsSeconds.size()) {
    s_.latency_overflow += 1;
  } else {
    s_.latency_counts[b] += 1;
  }
  s_.received += received;
  s_.sent += sent;
}

void ServerMetrics::record_error(const std::string& code) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.errors[code] += 1;
}

void ServerMetrics::record_handshake() {
  std::lock_guard<std::mutex> lock(mu_);
  s_.handshakes += 1;
}

void ServerMetrics::add_connections(int64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.connections_open = static_cast<uint64_t>(static_cast<int64_t>(s_.connections_open) + delta);
}

void ServerMetrics::add_in_flight(int64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.calls_in_flight = static_cast<uint64_t>(static_cast<int64_t>(s_.calls_in_flight) + delta);
}

void ServerMetrics::set_sessions(uint64_t open) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.sessions_open = open;
}

void ServerMetrics::record_session_opened() {
  std::lock_guard<std::mutex> lock(mu_);
  s_.sessions_opened += 1;
}

void ServerMetrics::record_sessions_expired(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.sessions_expired += n;
}

void ServerMetrics::record_sessions_freed_on_disconnect(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.sessions_freed_on_disconnect += n;
}

void ServerMetrics::set_kv_used_tokens(uint64_t tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.kv_used_tokens = tokens;
}

MetricsSnapshot ServerMetrics::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return s_;
}

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), " %.17g\n", value);
  out += name;
  out += buf;
}

}  // namespace

std::string ServerMetrics::render_prometheus(const MetricsSnapshot& s) {
  std::string out;
  metric(out, "layerwire_up", "gauge", "1 when the server is ready (health ok)");
  sample(out, "layerwire_up", s.phase == ServerPhase::Ok ? 1 : 0);

  metric(out, "layerwire_forward_latency_seconds", "histogram",
         "Forward call time on the server, request arrival to reply");
  uint64_t cumulative = 0;
  for (size_t b = 0; b < kLatencyBucketsSeconds.size(); ++b) {
    cumulative += s.latency_counts[b];
    char le[32];
    std::snprintf(le, sizeof(le), "%g", kLatencyBucketsSeconds[b]);
    sample(out, std::string("layerwire_forward_latency_seconds_bucket{le=\"") + le + "\"}",
           static_cast<double>(cumulative));
  }
  cumulative += s.latency_overflow;
  sample(out, "layerwire_forward_latency_seconds_bucket{le=\"+Inf\"}",
         static_cast<double>(cumulative));
  sample(out, "layerwire_forward_latency_seconds_sum", s.latency_sum_seconds);
  sample(out, "layerwire_forward_latency_seconds_count", static_cast<double>(s.forward_calls));

  metric(out, "layerwire_forward_calls_total", "counter", "Forward calls that succeeded");
  sample(out, "layerwire_forward_calls_total", static_cast<double>(s.forward_calls));
  metric(out, "layerwire_tokens_total", "counter", "Tokens (rows) run through the layers");
  sample(out, "layerwire_tokens_total", static_cast<double>(s.forward_tokens));

  metric(out, "layerwire_raw_bytes_total", "counter",
         "Raw tensor bytes (after dtype conversion, before compression)");
  sample(out, "layerwire_raw_bytes_total{direction=\"received\"}",
         static_cast<double>(s.received.raw_bytes));
  sample(out, "layerwire_raw_bytes_total{direction=\"sent\"}",
         static_cast<double>(s.sent.raw_bytes));
  metric(out, "layerwire_wire_bytes_total", "counter", "Tensor data bytes carried on the wire");
  sample(out, "layerwire_wire_bytes_total{direction=\"received\"}",
         static_cast<double>(s.received.wire_bytes));
  sample(out, "layerwire_wire_bytes_total{direction=\"sent\"}",
         static_cast<double>(s.sent.wire_bytes));
  metric(out, "layerwire_compressed_tensors_total", "counter", "Tensors carried compressed");
  sample(out, "layerwire_compressed_tensors_total{direction=\"received\"}",
         static_cast<double>(s.received.compressed));
  sample(out, "layerwire_compressed_tensors_total{direction=\"sent\"}",
         static_cast<double>(s.sent.compressed));
  metric(out, "layerwire_f16_overflow_fallbacks_total", "counter",
         "Reply tensors sent as f32 because f16/bf16 would overflow");
  sample(out, "layerwire_f16_overflow_fallbacks_total",
         static_cast<double>(s.sent.f16_overflow_fallbacks));

  metric(out, "layerwire_handshakes_total", "counter", "Successful handshakes");
  sample(out, "layerwire_handshakes_total", static_cast<double>(s.handshakes));
  metric(out, "layerwire_connections", "gauge", "Open RPC connections");
  sample(out, "layerwire_connections", static_cast<double>(s.connections_open));
  metric(out, "layerwire_sessions", "gauge", "Open sessions");
  sample(out, "layerwire_sessions", static_cast<double>(s.sessions_open));
  metric(out, "layerwire_sessions_opened_total", "counter", "Sessions opened");
  sample(out, "layerwire_sessions_opened_total", static_cast<double>(s.sessions_opened));
  metric(out, "layerwire_sessions_expired_total", "counter", "Sessions closed by the idle TTL");
  sample(out, "layerwire_sessions_expired_total", static_cast<double>(s.sessions_expired));
  metric(out, "layerwire_sessions_freed_on_disconnect_total", "counter",
         "Sessions freed because their client disconnected or dropped its connection");
  sample(out, "layerwire_sessions_freed_on_disconnect_total",
         static_cast<double>(s.sessions_freed_on_disconnect));
  metric(out, "layerwire_kv_used_tokens", "gauge", "KV cache tokens in use (whole blocks)");
  sample(out, "layerwire_kv_used_tokens", static_cast<double>(s.kv_used_tokens));
  metric(out, "layerwire_kv_budget_tokens", "gauge", "KV cache budget in tokens");
  sample(out, "layerwire_kv_budget_tokens", static_cast<double>(s.model.kv_budget_tokens));
  metric(out, "layerwire_calls_in_flight", "gauge", "RPC calls queued or running");
  sample(out, "layerwire_calls_in_flight", static_cast<double>(s.calls_in_flight));

  metric(out, "layerwire_errors_total", "counter", "Failed RPC calls by error code");
  for (const auto& [code, n] : s.errors) {
    sample(out, "layerwire_errors_total{code=\"" + code + "\"}", static_cast<double>(n));
  }
  return out;
}

}  // namespace lw
