// Model: the whole model in one process — Head (embedding, final norm, output) plus a
// LayerStack of every layer on one backend, with the hidden states staying on the device
// between them. Used by `layerwire eval` and by tests as the in-process reference for
// distributed runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/head.h"
#include "engine/layer_stack.h"

namespace lw {

struct ModelOptions {
  LayerStackOptions stack;
};

class Model {
 public:
  Model(FragmentStore& store, Backend& backend, const ModelOptions& options = {});

  const ModelParams& params() const { return head_.params(); }
  Head& head() { return head_; }
  LayerStack& layers() { return layers_; }

  // Runs tokens at positions [start, start + n) of an open session (see
  // LayerStack::forward for the rules) and returns the logits of every position,
  // n x vocab f32 row-major. Token ids are checked first (LW-ENG-001).
  std::vector<float> forward(SessionId session, std::span<const int32_t> tokens, int32_t start);
  // One prefill of all tokens in a fresh temporary session; returns n x vocab logits.
  std::vector<float> eval(std::span<const int32_t> tokens);

 private:
  Head head_;
  LayerStack layers_;
  DeviceBuffer x_;
  DeviceBuffer logits_;
  SessionId next_temp_session_ = 1ull << 63;
};

}  // namespace lw
