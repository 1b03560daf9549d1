#include "engine/kv_cache.h"

#include <limits>
#include <string>

#include "common/error.h"

namespace lw {

namespace {
std::string sid(SessionId id) { return "session " + std::to_string(id); }
}  // namespace

uint64_t KvCache::block_bytes(int32_t n_layers, int32_t n_kv_heads, int32_t head_dim,
                              int32_t block_size) {
  return 2ull * sizeof(uint16_t) * static_cast<uint64_t>(n_layers) * n_kv_heads * head_dim *
         block_size;
}

KvCache::KvCache(Backend& backend, int32_t n_layers, int32_t n_kv_heads, int32_t head_dim,
                 const KvCacheOptions& options)
    : n_layers_(n_layers),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      block_size_(options.block_size) {
  if (block_size_ < 1 || block_size_ > kMaxKvBlockSize) {
    throw Error(ErrorCode::kEngineShape, "KV cache: block_size " + std::to_string(block_size_) +
                                             " outside [1, " + std::to_string(kMaxKvBlockSize) +
                                             "]");
  }
  LW_CHECK(n_layers > 0 && n_kv_heads > 0 && head_dim > 0, "KV cache geometry");
  const uint64_t per_block = block_bytes(n_layers, n_kv_heads, head_dim, block_size_);
  std::string budget;
  if (options.budget_blocks > 0) {
    n_blocks_ = options.budget_blocks;
    budget = std::to_string(options.budget_blocks) + " blocks";
  } else if (options.budget_bytes > 0) {
    n_blocks_ = static_cast<int64_t>(options.budget_bytes / per_block);
    budget = std::to_string(options.budget_bytes) + " bytes";
  } else {
    const int64_t tokens = options.budget_tokens > 0 ? options.budget_tokens : 4096;
    n_blocks_ = (tokens + block_size_ - 1) / block_size_;
    budget = std::to_string(tokens) + " tokens";
  }
  if (n_blocks_ < 1) {
    throw Error(ErrorCode::kKvExhausted, "KV cache: a budget of " + budget + " holds no block of " +
                                             std::to_string(per_block) + " bytes (" +
                                             std::to_string(block_size_) + " tokens x " +
                                             std::to_string(n_layers) + " layers)");
  }
  if (n_blocks_ > std::numeric_limits<int32_t>::max() ||
      static_cast<uint64_t>(n_blocks_) > std::numeric_limits<uint64_t>::max() / per_block) {
    throw Error(ErrorCode::kKvExhausted, "KV cache: budget of " + budget + " is too large (" +
                                             std::to_string(n_blocks_) + " blocks)");
  }
  pool_ = backend.alloc(static_cast<uint64_t>(n_blocks_) * per_block);
  free_.reserve(n_blocks_);
  for (int64_t b = n_blocks_ - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

KvCache::Session& KvCache::get(SessionId id, const char* op) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    throw Error(ErrorCode::kEngineSession,
                std::string("KV cache ") + op + ": " + sid(id) + " is not open");
  }
  return it->second;
}

const KvCache::Session& KvCache::get(SessionId id, const char* op) const {
  return const_cast<KvCache*>(this)->get(id, op);
}

void KvCache::open(SessionId id) {
  if (sessions_.count(id) != 0) {
    throw Error(ErrorCode::kEngineSession, "KV cache open: " + sid(id) + " is already open");
  }
  sessions_.emplace(id, Session{});
}

void KvCache::close(SessionId id) {
  Session& s = get(id, "close");
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) free_.push_back(*it);
  sessions_.erase(id);
}

bool KvCache::contains(SessionId id) const { return sessions_.count(id) != 0; }

int64_t KvCache::length(SessionId id) const { return get(id, "length").length; }

const std::vector<int32_t>& KvCache::block_table(SessionId id) const {
  return get(id, "block_table").blocks;
}

void KvCache::truncate(SessionId id, int64_t length) {
  Session& s = get(id, "truncate");
  if (length < 0 || length > s.length) {
    throw Error(ErrorCode::kEnginePosition,
                "KV cache truncate: " + sid(id) + " has " + std::to_string(s.length) +
                    " positions; cannot truncate to " + std::to_string(length));
  }
  const size_t keep = static_cast<size_t>((length + block_size_ - 1) / block_size_);
  while (s.blocks.size() > keep) {
    free_.push_back(s.blocks.back());
    s.blocks.pop_back();
  }
  s.length = length;
}

void KvCache::append(SessionId id, int64_t start, int64_t n) {
  Session& s = get(id, "append");
  if (start != s.length) {
    throw Error(ErrorCode::kEnginePosition,
                "KV cache: " + sid(id) + " start position " + std::to_string(start) +
                    " is not contiguous: the session holds positions [0, " +
                    std::to_string(s.length) + ") (truncate first to roll back)");
  }
  LW_CHECK(n >= 1, "append of " + std::to_string(n) + " tokens");
  if (n > std::numeric_limits<int32_t>::max() - start) {
    throw Error(ErrorCode::kEnginePosition, "KV cache: " + sid(id) + " positions [" +
                                                std::to_string(start) + ", +" + std::to_string(n) +
                                                ") overflow int32");
  }
  const int64_t end = start + n;
  const int64_t need_blocks = (end + block_size_ - 1) / block_size_;
  const int64_t extra = need_blocks - static_cast<int64_t>(s.blocks.size());
  if (extra > free_blocks()) {
    throw Error(ErrorCode::kKvExhausted,
                "KV cache: " + sid(id) + " needs " + std::to_string(extra) + " more blocks of " +
                    std::to_string(block_size_) + " tokens for positions [" +
                    std::to_string(start) + ", " + std::to_string(end) + "), only " +
                    std::to_string(free_blocks()) + " of " + std::to_string(n_blocks_) + " free (" +
                    std::to_string(sessions_.size()) + " sessions open)");
  }
  for (int64_t i = 0; i < extra; ++i) {
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
  s.length = end;
}

KvLayerView KvCache::layer_view(int32_t layer) const {
  LW_CHECK(layer >= 0 && layer < n_layers_, "KV layer " + std::to_string(layer));
  KvLayerView view;
  view.n_blocks = static_cast<int32_t>(n_blocks_);
  view.n_kv_heads = n_kv_heads_;
  view.block_size = block_size_;
  view.head_dim = head_dim_;
  const int64_t per_kv = n_blocks_ * view.block_elems();  // elements of K (or V) of one layer
  uint16_t* base = pool_.as<uint16_t>();
  view.k = base + (2 * static_cast<int64_t>(layer)) * per_kv;
  view.v = base + (2 * static_cast<int64_t>(layer) + 1) * per_kv;
  return view;
}

}  // namespace lw
