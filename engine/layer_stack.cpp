#include "engine/layer_stack.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "common/error.h"
#include "common/log.h"

namespace lw {

namespace {

std::string layer_name(int layer, const char* tensor) {
  return "blk." + std::to_string(layer) + "." + tensor + ".weight";
}

// The manifest's hyper-parameters, checked for what the engine needs.
ModelParams checked_params(const ModelParams& p, LayerRange range) {
  auto bad = [&](const std::string& what) {
    throw Error(ErrorCode::kArchShape, "model " + p.preset + ": " + what);
  };
  if (p.dim == 0 || p.n_heads == 0 || p.n_kv_heads == 0 || p.head_dim == 0 || p.ffn_dim == 0) {
    bad("dim " + std::to_string(p.dim) + ", heads " + std::to_string(p.n_heads) + ", kv heads " +
        std::to_string(p.n_kv_heads) + ", head_dim " + std::to_string(p.head_dim) + ", ffn " +
        std::to_string(p.ffn_dim) + ": all must be positive");
  }
  if (p.n_heads % p.n_kv_heads != 0) {
    bad("heads " + std::to_string(p.n_heads) + " is not a multiple of kv heads " +
        std::to_string(p.n_kv_heads));
  }
  if (p.head_dim % 2 != 0 || p.head_dim > static_cast<uint32_t>(kMaxHeadDim)) {
    bad("head_dim " + std::to_string(p.head_dim) + " must be even and at most " +
        std::to_string(kMaxHeadDim));
  }
  if (!(p.norm_eps > 0) || !(p.rope_theta > 0)) {
    bad("norm eps " + std::to_string(p.norm_eps) + " and rope theta " +
        std::to_string(p.rope_theta) + " must be positive");
  }
  if (range.begin < 0 || range.end <= range.begin || range.end > static_cast<int>(p.n_layers)) {
    throw Error(ErrorCode::kFragLayerRange,
                "layers [" + std::to_string(range.begin) + ", " + std::to_string(range.end) +
                    ") are empty or outside the model's " + std::to_string(p.n_layers) + " layers");
  }
  return p;
}

}  // namespace

LayerStack::LayerStack(FragmentStore& store, LayerRange range, Backend& backend,
                       const LayerStackOptions& options)
    : backend_(backend),
      params_(checked_params(store.manifest().params, range)),
      range_(range),
      options_(options),
      kv_(backend, range.end - range.begin, static_cast<int32_t>(params_.n_kv_heads),
          static_cast<int32_t>(params_.head_dim), options.kv) {
  if (options_.max_batch_tokens < 1) {
    throw Error(
        ErrorCode::kEngineShape,
        "max_batch_tokens " + std::to_string(options_.max_batch_tokens) + " must be at least 1");
  }
  const int64_t dim = params_.dim, q_dim = params_.q_dim(), kv_dim = params_.kv_dim();
  const int64_t ffn = params_.ffn_dim;
  const std::string context = store.dir().string() + ": layers " + range_.to_string();
  layers_.resize(static_cast<size_t>(range_.end - range_.begin));
  for (int l = range_.begin; l < range_.end; ++l) {
    Layer& layer = layers_[static_cast<size_t>(l - range_.begin)];
    WeightSet& w = layer.weights;
    layer.attn_norm = w.add_vector(layer_name(l, "attn_norm"), dim);
    layer.wq = w.add_matrix(layer_name(l, "attn_q"), q_dim, dim);
    layer.wk = w.add_matrix(layer_name(l, "attn_k"), kv_dim, dim);
    layer.wv = w.add_matrix(layer_name(l, "attn_v"), kv_dim, dim);
    layer.wo = w.add_matrix(layer_name(l, "attn_output"), dim, q_dim);
    layer.ffn_norm = w.add_vector(layer_name(l, "ffn_norm"), dim);
    layer.gate = w.add_matrix(layer_name(l, "ffn_gate"), ffn, dim);
    layer.up = w.add_matrix(layer_name(l, "ffn_up"), ffn, dim);
    layer.down = w.add_matrix(layer_name(l, "ffn_down"), dim, ffn);
    w.load(store, backend_, context);
  }
  logger("engine")->info(
      "loaded layers {} of {} ({}, {:.1f} MiB of weights) on {}; KV cache {} "
      "blocks of {} tokens ({:.1f} MiB)",
      range_.to_string(), store.dir().string(), params_.preset, weight_bytes() / 1048576.0,
      backend_.description(), kv_.total_blocks(), kv_.block_size(), kv_.pool_bytes() / 1048576.0);
}

uint64_t LayerStack::weight_bytes() const {
  uint64_t total = 0;
  for (const Layer& l : layers_) total += l.weights.matrix_bytes();
  return total;
}

int64_t LayerStack::check_batch(std::span<const BatchEntry> batch) const {
  if (batch.empty()) throw Error(ErrorCode::kEngineShape, "forward: the batch has no entries");
  int64_t total = 0;
  std::unordered_set<SessionId> seen;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchEntry& e = batch[i];
    const std::string where =
        "forward: entry " + std::to_string(i) + " (session " + std::to_string(e.session) + ")";
    if (e.n_tokens < 1) {
      throw Error(ErrorCode::kEngineShape,
                  where + " has " + std::to_string(e.n_tokens) + " tokens; at least 1 needed");
    }
    if (!seen.insert(e.session).second) {
      throw Error(ErrorCode::kEngineShape, where + ": the session appears twice in one batch");
    }
    const int64_t length = kv_.length(e.session);  // LW-ENG-002 if not open
    if (e.start != length) {
      throw Error(ErrorCode::kEnginePosition,
                  where + ": start position " + std::to_string(e.start) +
                      " is not contiguous: the session holds positions [0, " +
                      std::to_string(length) + ") (truncate first to roll back)");
    }
    total += e.n_tokens;
  }
  if (total > options_.max_batch_tokens) {
    throw Error(ErrorCode::kEngineShape, "forward: batch of " + std::to_string(total) +
                                             " tokens exceeds max_batch_tokens " +
                                             std::to_string(options_.max_batch_tokens));
  }
  return total;
}

void LayerStack::ensure_workspace(int64_t n_tokens) {
  if (n_tokens <= ws_tokens_) return;
  const int64_t dim = params_.dim, q_dim = params_.q_dim(), kv_dim = params_.kv_dim();
  const int64_t ffn = params_.ffn_dim;
  // Each region rounded to 64 floats (256 bytes) so every array stays aligned.
  auto round = [](int64_t floats) { return (floats + 63) / 64 * 64; };
  const int64_t sizes[] = {round(n_tokens * dim),    round(n_tokens * q_dim),
                           round(n_tokens * kv_dim), round(n_tokens * kv_dim),
                           round(n_tokens * q_dim),  round(n_tokens * dim),
                           round(n_tokens * ffn),    round(n_tokens * ffn)};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  ws_ = DeviceBuffer();
  ws_ = backend_.alloc(static_cast<uint64_t>(total) * sizeof(float));
  float* p = ws_.as<float>();
  float** slots[] = {&xn_, &q_, &k_, &v_, &attn_, &o_, &gate_, &up_};
  for (size_t i = 0; i < 8; ++i) {
    *slots[i] = p;
    p += sizes[i];
  }
  ws_tokens_ = n_tokens;
}

AttentionBatch LayerStack::prepare_batch(std::span<const BatchEntry> batch, int64_t n_tokens) {
  // Device layout (int32): positions[n] | table_offsets[n] | concatenated block tables.
  host_meta_.assign(static_cast<size_t>(2 * n_tokens), 0);
  int32_t max_position = 0;
  int64_t t = 0;
  for (const BatchEntry& e : batch) {
    const std::vector<int32_t>& table = kv_.block_table(e.session);
    const int32_t table_offset = static_cast<int32_t>(host_meta_.size() - 2 * n_tokens);
    for (int32_t i = 0; i < e.n_tokens; ++i, ++t) {
      host_meta_[static_cast<size_t>(t)] = e.start + i;
      host_meta_[static_cast<size_t>(n_tokens + t)] = table_offset;
      max_position = std::max(max_position, e.start + i);
    }
    host_meta_.insert(host_meta_.end(), table.begin(), table.end());
  }
  const uint64_t bytes = host_meta_.size() * sizeof(int32_t);
  if (meta_.size() < bytes) {
    meta_ = DeviceBuffer();
    meta_ = backend_.alloc(bytes * 2);
  }
  backend_.upload(meta_, 0, host_meta_.data(), bytes);
  AttentionBatch ab;
  ab.n_tokens = static_cast<int32_t>(n_tokens);
  ab.max_position = max_position;
  ab.one_session_run = batch.size() == 1;  // one entry: consecutive positions of one session
  ab.positions = meta_.as<int32_t>();
  ab.table_offsets = ab.positions + n_tokens;
  ab.block_tables = ab.positions + 2 * n_tokens;
  return ab;
}

void LayerStack::run_layer(Layer& layer, int32_t index, const AttentionBatch& ab, float* x) {
  Backend& b = backend_;
  const WeightSet& w = layer.weights;
  const int64_t n = ab.n_tokens;
  const int64_t dim = params_.dim, q_dim = params_.q_dim(), kv_dim = params_.kv_dim();
  const int64_t ffn = params_.ffn_dim;
  const int64_t n_heads = params_.n_heads, n_kv = params_.n_kv_heads, hd = params_.head_dim;
  const float eps = params_.norm_eps, theta = params_.rope_theta;
  const KvLayerView kv = kv_.layer_view(index);

  b.rms_norm(x, w.vector(layer.attn_norm), n, dim, eps, xn_);
  b.matmul(w.matrix(layer.wq), xn_, n, q_);
  b.matmul(w.matrix(layer.wk), xn_, n, k_);
  b.matmul(w.matrix(layer.wv), xn_, n, v_);
  b.rope(q_, n, q_dim, n_heads, hd, ab.positions, theta, options_.rope_mode);
  b.rope(k_, n, kv_dim, n_kv, hd, ab.positions, theta, options_.rope_mode);
  b.kv_write(kv, ab, k_, v_);
  b.attention(kv, ab, q_, n_heads, static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))),
              attn_);
  b.matmul(w.matrix(layer.wo), attn_, n, o_);
  b.add(x, o_, n * dim, x);

  b.rms_norm(x, w.vector(layer.ffn_norm), n, dim, eps, xn_);
  b.matmul(w.matrix(layer.gate), xn_, n, gate_);
  b.matmul(w.matrix(layer.up), xn_, n, up_);
  b.swiglu(gate_, up_, n * ffn, gate_);
  b.matmul(w.matrix(layer.down), gate_, n, o_);
  b.add(x, o_, n * dim, x);
}

void LayerStack::forward_device(std::span<const BatchEntry> batch, float* x) {
  const int64_t n = check_batch(batch);
  size_t reserved = 0;
  auto rollback = [&] {
    for (size_t i = 0; i < reserved; ++i) kv_.truncate(batch[i].session, batch[i].start);
  };
  try {
    for (; reserved < batch.size(); ++reserved) {
      kv_.append(batch[reserved].session, batch[reserved].start, batch[reserved].n_tokens);
    }
    ensure_workspace(n);
    const AttentionBatch ab = prepare_batch(batch, n);
    for (size_t l = 0; l < layers_.size(); ++l) {
      run_layer(layers_[l], static_cast<int32_t>(l), ab, x);
    }
  } catch (...) {
    rollback();
    throw;
  }
}

void LayerStack::forward(std::span<const BatchEntry> batch, std::span<const float> hidden_in,
                         std::span<float> hidden_out) {
  const int64_t n = check_batch(batch);
  const uint64_t floats = static_cast<uint64_t>(n) * params_.dim;
  if (hidden_in.size() != floats || hidden_out.size() != floats) {
    throw Error(ErrorCode::kEngineShape, "forward: " + std::to_string(n) + " tokens x dim " +
                                             std::to_string(params_.dim) + " need " +
                                             std::to_string(floats) + " floats; got " +
                                             std::to_string(hidden_in.size()) + " in, " +
                                             std::to_string(hidden_out.size()) + " out");
  }
  const uint64_t bytes = floats * sizeof(float);
  if (io_.size() < bytes) {
    io_ = DeviceBuffer();
    io_ = backend_.alloc(bytes);
  }
  backend_.upload(io_, 0, hidden_in.data(), bytes);
  forward_device(batch, io_.as<float>());
  backend_.download(io_, 0, hidden_out.data(), bytes);
}

}  // namespace lw
