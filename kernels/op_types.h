// Plain structs shared by every backend and by the op launchers (CPU free functions now,
// CUDA kernels later): the RoPE modes, the paged KV cache layout and the description of an
// attention batch. They hold device addresses and sizes only, no ownership, so a CUDA
// kernel can take them by value and read the same int32 arrays the CPU code reads.
//
// KV cache layout (one pool per LayerStack, f16 = IEEE half bits, row-major):
//   pool[layer][kv][block][kv_head][slot][head_dim]     kv: 0 = K, 1 = V
// A block holds `block_size` consecutive positions of one session for every KV head.
// Position p of a session lives in physical block table[p / block_size], slot
// p % block_size, where `table` is that session's block table (physical block ids).
#pragma once

#include <cstdint>

namespace lw {

// Limits every backend supports; the engine checks them when a model is loaded.
constexpr int32_t kMaxHeadDim = 512;
constexpr int32_t kMaxKvBlockSize = 256;

// How RoPE pairs the values of a head of `head_dim` values (d = head_dim):
//   AdjacentPair: pairs (2i, 2i+1) — GGUF "normal" mode; llama GGUF files store the Q and K
//                 rows permuted for it.
//   RotateHalf:   pairs (i, i + d/2) — NeoX / Hugging Face layout.
// Pair i is rotated by angle pos * theta^(-2i/d) in both modes: the two are the same math
// up to a permutation of the head's values (tests/unit/kernels/rope_test.cpp proves it).
enum class RopeMode { AdjacentPair, RotateHalf };

// One layer's slice of the KV pool. k and v point at [block][kv_head][slot][head_dim] f16.
struct KvLayerView {
  uint16_t* k = nullptr;  // device address
  uint16_t* v = nullptr;  // device address
  int32_t n_blocks = 0;
  int32_t n_kv_heads = 0;
  int32_t block_size = 0;  // tokens per block
  int32_t head_dim = 0;

  int64_t block_elems() const { return static_cast<int64_t>(n_kv_heads) * block_size * head_dim; }
  // Element offset of (physical block, kv head, slot) within k or v.
  int64_t offset(int64_t block, int64_t kv_head, int64_t slot) const {
    return ((block * n_kv_heads + kv_head) * block_size + slot) * head_dim;
  }
};

// The tokens of one forward call, possibly from several sessions. All pointers are device
// addresses of int32 arrays (host addresses for the CPU backend) that stay valid until the
// ops using them have completed. Token t belongs to the session whose block table starts at
// block_tables[table_offsets[t]]; it sits at absolute position positions[t] in it, and
// attends causally to positions 0..positions[t] of that session (its own K/V must have been
// written with kv_write first). The engine builds these arrays and guarantees every table
// entry a token can reach (index < positions[t] / block_size + 1) is a valid block id.
struct AttentionBatch {
  int32_t n_tokens = 0;
  int32_t max_position = 0;  // max over positions[] (host-known; sizes grids / workspaces)
  const int32_t* positions = nullptr;      // [n_tokens]
  const int32_t* table_offsets = nullptr;  // [n_tokens]
  const int32_t* block_tables = nullptr;   // concatenated per-session tables
  // Host-known: true only when every token is of one session (all table_offsets equal) at
  // consecutive positions positions[0] + t (one session's prefill). false = unknown. The
  // CUDA backend takes its tensor-core prefill kernel only when it is set (and each of that
  // kernel's tiles re-checks it on the device, falling back to a scalar path if it is wrong).
  bool one_session_run = false;
};

}  // namespace lw
