// The Cap'n Proto side of layer_server: the LayerServer bootstrap (handshake, health),
// Connection (one authenticated client: openSession, info) and Session (forward, truncate,
// close) implementations of schema/layerwire.capnp, and the state they share.
// Every request is checked on the event loop (sizes against the limits, session ownership,
// token limits) before anything is queued; the compute thread then decodes, runs the layers
// and encodes the reply (server/forward_job.h); the loop writes it back. Every failure
// becomes the RPC exception of its LW code (schema/rpc_error.h) and is counted by code in the
// metrics.
// Threading: everything here lives on the event loop thread, except the ComputeWorkspace,
// which only compute-thread jobs touch.
#pragma once

#include <capnp/capability.h>
#include <kj/async.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/wire_codec.h"
#include "server/compute_queue.h"
#include "server/forward_job.h"
#include "server/metrics.h"
#include "server/session_registry.h"

namespace lw {

// What the RPC objects share. Owned by ServerApp; outlives every RPC connection.
struct ServiceContext {
  ServiceContext(const ServerConfig& config, std::string auth_token, ServerMetrics& metrics,
                 ComputeQueue& compute, ComputeWorkspace& workspace);

  const ServerConfig& config;
  const std::string auth_token;  // empty = no authentication; never logged
  ServerMetrics& metrics;
  ComputeQueue& compute;
  ComputeWorkspace& workspace;  // compute thread only (captured by jobs)
  ModelInfo model;              // set once loading is done
  SessionRegistry registry;
  WireCodec codec;       // header checks on the loop thread
  bool serving = false;  // false while loading and once draining: calls are refused
  std::string not_serving_reason = "the model is loading";
  uint64_t next_owner = 1;
  uint64_t in_flight = 0;  // RPC calls accepted and not yet answered

  // Throws LW-SRV-002 (overloaded) naming `method` when the server is loading or draining.
  void check_serving(const char* method) const;
  // The decode limits of a forward request (docs/CONFIG.md: max_tokens_per_call,
  // max_message_bytes, the model's hidden size).
  DecodeLimits forward_limits() const;
  // Frees these sessions' KV on the compute thread (queued behind their owner's calls) and
  // updates the session / KV gauges. The ids must already be out of the registry.
  void free_sessions(uint64_t owner, const std::vector<uint64_t>& ids);
  // Expires idle sessions (called from the server's timer).
  void expire_sessions(SessionRegistry::Clock::time_point now);
  void update_session_gauge();

  // In-flight accounting for the drain: when_idle() resolves once no call is in flight.
  void call_started();
  void call_finished();
  kj::Promise<void> when_idle();

 private:
  kj::Own<kj::PromiseFulfiller<void>> idle_fulfiller_;
};

// The bootstrap capability served on every RPC connection.
capnp::Capability::Client make_layer_server(ServiceContext& context);

}  // namespace lw
