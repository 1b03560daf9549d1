// Synthetic models: a valid llama-architecture GGUF with random weights in the real
// encodings, the standard llama metadata keys and a small real tokenizer vocabulary
// (SentencePiece-style "llama": <unk>, <s>, </s>, the 256 byte tokens and merged pieces with
// scores). Tests, demos and benchmarks make their models with this; nothing is downloaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "fragments/store.h"

namespace lw {

struct SynthShape {
  uint32_t dim = 256;
  uint32_t n_layers = 4;
  uint32_t n_heads = 8;
  uint32_t n_kv_heads = 2;
  uint32_t head_dim = 32;
  uint32_t ffn_dim = 768;
  uint32_t vocab_size = 512;
  uint32_t context_length = 2048;
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
};

// Presets: "tiny" (dim 256, 4 layers, 8 heads, 2 KV heads, head_dim 32, ffn 768,
// vocab 512), "tiny-magistral" (like tiny but head_dim != dim/heads: dim 512, 8 heads,
// head_dim 32), "mistral-7b", "magistral-small" (the shapes of DESIGN.md).
// Throws LW-SYNTH-001 for an unknown name.
SynthShape synth_preset(const std::string& preset);

struct SynthOptions {
  std::string preset = "tiny";
  std::optional<SynthShape> shape;  // overrides the preset's shape when set
  int layers = -1;                  // overrides the layer count when >= 1
  std::string quant = "q4_k_m";     // q4_k_m | q8_0 | f16 | f32 (throws LW-SYNTH-001 otherwise)
  uint64_t seed = 1;
  uint32_t gguf_version = 3;
  ProgressFn progress;
};

void synth_model(const SynthOptions& options, const std::filesystem::path& out);

}  // namespace lw
