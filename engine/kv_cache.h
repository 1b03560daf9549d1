// The paged KV cache of one LayerStack: a pool of fixed-size blocks on the backend (K and V
// of every layer of the stack, f16; layout in kernels/op_types.h), a free list, and per
// session a block table and a length. Sessions grow by whole blocks on append, roll back
// with truncate (whole blocks past the new length go back to the pool) and free everything
// on close. Running out of blocks is a typed error (LW-KV-001, kind Overloaded) that leaves
// the cache unchanged: never a crash, never an overwrite of another session's blocks.
// Bookkeeping is host-side; only the pool lives on the device. Not thread-safe.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kernels/backend.h"

namespace lw {

using SessionId = uint64_t;

struct KvCacheOptions {
  // Tokens per block, 1..256. Smaller wastes less on short sessions; larger means shorter
  // block tables.
  int32_t block_size = 16;
  // The budget, first non-zero of: blocks, bytes (of the whole pool, all layers, K and V),
  // tokens (rounded up to whole blocks). All zero: budget_tokens = 4096.
  int64_t budget_blocks = 0;
  uint64_t budget_bytes = 0;
  int64_t budget_tokens = 0;
};

class KvCache {
 public:
  // n_layers: layers of the owning stack. Allocates the whole pool up front.
  // Throws LW-KV-001 when the budget holds no block, LW-ENG-001 for a bad block size.
  KvCache(Backend& backend, int32_t n_layers, int32_t n_kv_heads, int32_t head_dim,
          const KvCacheOptions& options);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Bytes one block takes in the pool (all layers, K and V, f16).
  static uint64_t block_bytes(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim,
                              int32_t block_size);

  // Opens an empty session; LW-ENG-002 if the id is already open.
  void open(SessionId id);
  // Frees the session's blocks; LW-ENG-002 if it is not open.
  void close(SessionId id);
  bool contains(SessionId id) const;
  // Positions stored (the next position to append); LW-ENG-002 if not open.
  int64_t length(SessionId id) const;
  // Rolls back to `length` positions (0 <= length <= current, else LW-ENG-003), freeing the
  // blocks no longer needed.
  void truncate(SessionId id, int64_t length);
  // Reserves positions [start, start + n) (n >= 1): start must equal length(id)
  // (LW-ENG-003), and the blocks must be available (LW-KV-001 with the numbers; nothing
  // changes then). Afterwards length(id) == start + n.
  void append(SessionId id, int64_t start, int64_t n);
  // Physical block ids of the session, covering positions [0, length).
  const std::vector<int32_t>& block_table(SessionId id) const;

  int32_t block_size() const { return block_size_; }
  int64_t total_blocks() const { return n_blocks_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t session_count() const { return static_cast<int64_t>(sessions_.size()); }
  uint64_t pool_bytes() const { return pool_.size(); }
  // The device view of one layer (0-based within the stack).
  KvLayerView layer_view(int32_t layer) const;

 private:
  struct Session {
    std::vector<int32_t> blocks;
    int64_t length = 0;
  };
  Session& get(SessionId id, const char* op);
  const Session& get(SessionId id, const char* op) const;

  int32_t n_layers_;
  int32_t n_kv_heads_;
  int32_t head_dim_;
  int32_t block_size_;
  int64_t n_blocks_ = 0;
  DeviceBuffer pool_;
  std::vector<int32_t> free_;  // stack of free block ids
  std::unordered_map<SessionId, Session> sessions_;
};

}  // namespace lw
