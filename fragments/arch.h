// Architecture detection: from GGUF metadata and tensor shapes to the model's
// hyper-parameters and preset name. Presets: "mistral-7b", "magistral-small", or
// "llama-generic" for any other consistent llama-family shape. Anything else (another
// general.architecture, MoE tensors, biases, unknown tensor names, inconsistent shapes) is
// refused with LW-ARCH-* naming what was seen. Never assumes: every value is read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fragments/gguf.h"

namespace lw {

struct ModelParams {
  std::string preset;           // mistral-7b | magistral-small | llama-generic
  uint32_t n_layers = 0;        // llama.block_count
  uint32_t dim = 0;             // llama.embedding_length
  uint32_t n_heads = 0;         // llama.attention.head_count
  uint32_t n_kv_heads = 0;      // llama.attention.head_count_kv (defaults to n_heads)
  uint32_t head_dim = 0;        // llama.attention.key_length (defaults to dim / n_heads)
  uint32_t ffn_dim = 0;         // llama.feed_forward_length
  uint32_t vocab_size = 0;      // rows of token_embd.weight
  uint32_t context_length = 0;  // llama.context_length
  float rope_theta = 10000.0f;  // llama.rope.freq_base
  float norm_eps = 1e-5f;       // llama.attention.layer_norm_rms_epsilon
  bool tied_output = false;     // no output.weight: the head reuses token_embd.weight
  std::string tokenizer_model;  // tokenizer.ggml.model ("llama", "gpt2") or ""

  uint32_t q_dim() const { return n_heads * head_dim; }
  uint32_t kv_dim() const { return n_kv_heads * head_dim; }
};

// The tensor names of a llama GGUF: "token_embd.weight", "output_norm.weight",
// "output.weight", "blk.N.attn_norm.weight", "blk.N.attn_q.weight", "blk.N.attn_k.weight",
// "blk.N.attn_v.weight", "blk.N.attn_output.weight", "blk.N.ffn_norm.weight",
// "blk.N.ffn_gate.weight", "blk.N.ffn_up.weight", "blk.N.ffn_down.weight".
// Returns the layer of a "blk.N.*" name, or -1 for a head tensor.
int tensor_layer(const std::string& name);

ModelParams detect_architecture(const GgufMetadata& metadata,
                                const std::vector<TensorDesc>& tensors);

}  // namespace lw
