// The compute-thread half of Session.forward: decode and verify the request tensor (zstd,
// unshuffle, dtype, xxh3-64), run the served layers, encode the reply. No Cap'n Proto here:
// the event loop builds a ForwardRequest from the call (after the cheap header checks) and
// turns the ForwardResult into the reply message.
// Threading: run_forward and everything in ComputeWorkspace belong to the compute thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/wire_codec.h"
#include "server/compute_model.h"

namespace lw {

// Compute-thread state: the loaded model and the codec and buffers forward reuses.
struct ComputeWorkspace {
  std::unique_ptr<ComputeModel> model;  // null until loaded, and again after shutdown
  WireCodec codec;
  std::vector<float> in;
  std::vector<float> out;
};

struct ForwardRequest {
  uint64_t session = 0;
  int32_t start = 0;
  // The request tensor, copied out of the RPC message by the loop (the message may be
  // released if the call is cancelled while the job waits), header already checked.
  WireTensor tensor;
  DecodeLimits limits;
  EncodeOptions reply;  // dtype and compression of the reply (only what the client accepts)
  std::chrono::steady_clock::time_point queued_at;
};

struct ForwardResult {
  WireTensor hidden;
  int64_t length = 0;  // the session's length afterwards
  uint64_t tokens = 0;
  uint64_t queue_ns = 0, decode_ns = 0, compute_ns = 0, encode_ns = 0;
  WireStats received;  // the request tensor
  WireStats sent;      // the reply tensor
  uint64_t kv_used_tokens = 0;
};

// Decodes (LW-WIRE-001..006), runs the layers (LW-ENG-002 / 003, LW-KV-001) and encodes.
// On any error the session's length is unchanged. ws.model must be loaded.
ForwardResult run_forward(ComputeWorkspace& ws, const ForwardRequest& request);

}  // namespace lw
