// Head: the model's ends that are not transformer blocks — the token embedding lookup
// (rows of token_embd.weight, dequantized) and the output: final RMSNorm (output_norm) and
// the output matrix (output.weight, or token_embd.weight when the model ties them) giving
// f32 logits. Weights are checked and verified like LayerStack's. Not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/weights.h"
#include "fragments/store.h"
#include "kernels/backend.h"

namespace lw {

class Head {
 public:
  // Loads token_embd, output_norm and output (or the tied embedding) onto `backend`, which
  // must outlive the head.
  Head(FragmentStore& store, Backend& backend);
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  const ModelParams& params() const { return params_; }
  Backend& backend() { return backend_; }
  int64_t vocab_size() const { return params_.vocab_size; }
  uint64_t weight_bytes() const { return weights_.matrix_bytes(); }

  // Throws LW-ENG-001 naming the index and value of the first token id outside
  // [0, vocab_size).
  void check_tokens(std::span<const int32_t> tokens) const;

  // hidden (n x dim f32) = embedding rows of the tokens; hidden.size() must be n * dim.
  void embed(std::span<const int32_t> tokens, std::span<float> hidden);
  // logits (n x vocab f32) of hidden states (n x dim).
  void logits(std::span<const float> hidden, std::span<float> logits);

  // Device variants: x and out are device addresses (n x dim, n x vocab f32). Ready after
  // backend().synchronize().
  void embed_device(std::span<const int32_t> tokens, float* x);
  void logits_device(const float* x, int64_t n_tokens, float* out);

 private:
  void ensure(DeviceBuffer& buffer, uint64_t bytes);

  Backend& backend_;
  ModelParams params_;
  WeightSet weights_;
  int embd_ = -1, output_norm_ = -1, output_ = -1;
  DeviceBuffer tokens_;  // device copy of the token ids
  DeviceBuffer normed_;  // n x dim scratch
  DeviceBuffer io_x_;    // host-API staging: hidden states
  DeviceBuffer io_out_;  // host-API staging: logits
};

}  // namespace lw
