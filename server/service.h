// The Cap'n Proto side of layer_server: the LayerServer bootstrap (handshake, health),
// Connection (one authenticated client: openSession, info) and Session (forward, truncate,
// close) implementations of schema/layerwire.capnp, and the state they share.
// Every request is checked on the event loop (sizes against the limits, session ownership,
// token limits) before anything is queued; the compute thread then decodes, runs the layers
// and encodes the reply; the loop writes it back. Every failure becomes the RPC exception of
// its LW code (schema/rpc_error.h) and is counted by code in the metrics.
// Threading: every object here lives on the event loop thread, except ComputeWorkspace,
// which only compute-thread jobs touch.
#pragma once

#include <capnp/capability.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/wire_codec.h"
#include "server/compute_model.h"
#include "server/compute_queue.h"
#include "server/metrics.h"
#include "server/session_registry.h"

namespace lw {

// Compute-thread state: the loaded model and the codec and buffers forward reuses.
struct ComputeWorkspace {
  std::unique_ptr<ComputeModel> model;
  WireCodec codec;
  std::vector<float> in;
  std::vector<float> out;
};

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
  WireCodec codec;              // header checks on the loop thread
  bool serving = false;         // false while loading and once draining: calls are refused
  uint64_t next_owner = 1;
  uint64_t in_flight = 0;       // forward/truncate/close/open calls not yet answered

  // Closes these sessions' KV on the compute thread (queued behind their owner's calls)
  // and updates the session / KV gauges.
  void free_sessions(uint64_t owner, const std::vector<uint64_t>& ids);
  // Expires idle sessions (called from the server's timer).
  void expire_sessions();
};

// The bootstrap capability served on every RPC connection.
capnp::Capability::Client make_layer_server(ServiceContext& context);

}  // namespace lw
