// What the compute thread runs: the served layers behind one small interface, with two
// implementations — LayerStack on a Backend (the real server) and a no-op stand-in that
// returns its input unchanged while keeping the same session rules (the `compute: "noop"`
// benchmark aid, which measures the RPC path alone). Loading (verify the layer fragments,
// open the store, create the backend, upload) happens in load_compute_model.
// Threading: constructed, used and destroyed on the compute thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "common/config.h"
#include "server/metrics.h"

namespace lw {

class ComputeModel {
 public:
  virtual ~ComputeModel() = default;

  virtual const ModelInfo& info() const = 0;
  // Session bookkeeping, as engine/kv_cache.h (LW-ENG-002 / LW-ENG-003 / LW-KV-001).
  virtual void open(uint64_t session) = 0;
  virtual void close(uint64_t session) = 0;
  virtual int64_t length(uint64_t session) = 0;
  virtual void truncate(uint64_t session, int64_t length) = 0;
  // hidden_in / hidden_out: n_tokens x hidden_size f32 for positions [start, start + n).
  virtual void forward(uint64_t session, int32_t start, int32_t n_tokens,
                       std::span<const float> hidden_in, std::span<float> hidden_out) = 0;
  // KV tokens in use (whole blocks) over all sessions.
  virtual uint64_t kv_used_tokens() = 0;
};

// Reads the manifest of config.fragments_dir, verifies exactly the fragments of the served
// layers (LW-SRV-008 naming every bad file and tensor), detects the architecture and loads
// the layers onto the configured backend (or, for compute "noop", loads no weights).
std::unique_ptr<ComputeModel> load_compute_model(const ServerConfig& config);

}  // namespace lw
