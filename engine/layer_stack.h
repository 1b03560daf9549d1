// LayerStack: the transformer blocks [begin, end) of a fragment store, loaded onto a Backend
// with their KV cache. Every hyper-parameter comes from the manifest's ModelParams; every
// tensor is checked against them and verified (xxh3-128) while loading, and weights stay in
// their stored encodings. forward() runs a batch of (session, n tokens, start position)
// entries — several sessions per call — through every block:
//   h = x + Wo · attention(rope(Wq·n1), rope(Wk·n1), Wv·n1),   n1 = rms_norm(x) * attn_norm
//   y = h + Wdown · (silu(Wgate·n2) * (Wup·n2)),               n2 = rms_norm(h) * ffn_norm
// with causal grouped-query attention over the paged KV cache, scale 1/sqrt(head_dim).
// Not thread-safe: one caller (the device's compute thread) at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/weights.h"
#include "fragments/store.h"
#include "kernels/backend.h"

namespace lw {

struct LayerStackOptions {
  KvCacheOptions kv;
  // Most tokens (all entries together) one forward call may carry; larger calls fail with
  // LW-ENG-001. The activation workspace grows on demand up to this.
  int32_t max_batch_tokens = 4096;
  // RoPE pairing. GGUF llama files store Q/K rows for adjacent pairs, which is the default.
  RopeMode rope_mode = RopeMode::AdjacentPair;
};

// One entry of a forward batch: n_tokens consecutive positions [start, start + n_tokens) of
// an open session. Its hidden states are the next n_tokens rows of the batch's input.
struct BatchEntry {
  SessionId session = 0;
  int32_t n_tokens = 0;
  int32_t start = 0;
};

class LayerStack {
 public:
  // Loads layers [range.begin, range.end) of the store (LW-FRAG-010 for a range outside the
  // model) onto `backend`, which must outlive the stack.
  LayerStack(FragmentStore& store, LayerRange range, Backend& backend,
             const LayerStackOptions& options = {});
  LayerStack(const LayerStack&) = delete;
  LayerStack& operator=(const LayerStack&) = delete;

  const ModelParams& params() const { return params_; }
  LayerRange range() const { return range_; }
  Backend& backend() { return backend_; }
  // Sessions are opened, truncated and closed here; forward() appends to them.
  KvCache& kv() { return kv_; }
  // Bytes of the stack's weight matrices as stored (what one decode step streams).
  uint64_t weight_bytes() const;

  // Runs the batch. hidden_in and hidden_out hold total_tokens x dim f32 (they may be the
  // same memory). Checks (LW-ENG-001): entries non-empty, n_tokens >= 1, no session twice,
  // sizes match, total <= max_batch_tokens; sessions must be open (LW-ENG-002) and each
  // start must equal the session's length (LW-ENG-003); LW-KV-001 when blocks run out. On
  // any error no session changes length.
  void forward(std::span<const BatchEntry> batch, std::span<const float> hidden_in,
               std::span<float> hidden_out);
  // The same on a device buffer: x (device address, total_tokens x dim f32) is updated in
  // place. Results are ready after backend().synchronize().
  void forward_device(std::span<const BatchEntry> batch, float* x);

 private:
  struct Layer {
    WeightSet weights;
    int attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
  };
  int64_t check_batch(std::span<const BatchEntry> batch) const;
  void ensure_workspace(int64_t n_tokens);
  AttentionBatch prepare_batch(std::span<const BatchEntry> batch, int64_t n_tokens);
  void run_layer(Layer& layer, int32_t index, const AttentionBatch& ab, float* x);

  Backend& backend_;
  ModelParams params_;
  LayerRange range_;
  LayerStackOptions options_;
  std::vector<Layer> layers_;
  KvCache kv_;

  // Workspace (device): activations for ws_tokens_ tokens, batch metadata, host I/O staging.
  int64_t ws_tokens_ = 0;
  DeviceBuffer ws_;
  float *xn_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *attn_ = nullptr;
  float *o_ = nullptr, *gate_ = nullptr, *up_ = nullptr;
  DeviceBuffer meta_;
  DeviceBuffer io_;
  std::vector<int32_t> host_meta_;
};

}  // namespace lw
