#include "server/compute_model.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "engine/layer_stack.h"
#include "fragments/arch.h"
#include "fragments/manifest.h"
#include "fragments/store.h"
#include "kernels/backend.h"

namespace lw {

namespace {

ModelInfo base_info(const Manifest& manifest, LayerRange range, const ServerConfig& config) {
  ModelInfo info;
  info.preset = manifest.params.preset;
  info.digest = manifest.digest.hex();
  info.n_layers = manifest.params.n_layers;
  info.layer_begin = static_cast<uint32_t>(range.begin);
  info.layer_end = static_cast<uint32_t>(range.end);
  info.hidden_size = manifest.params.dim;
  info.compute = config.compute;
  return info;
}

class StackModel final : public ComputeModel {
 public:
  StackModel(const ServerConfig& config, const Manifest& manifest, LayerRange range)
      : store_(FragmentStore::open(config.fragments_dir)),
        backend_(make_backend(config.backend, config.device, config.threads)),
        stack_(store_, range, *backend_, stack_options(config)) {
    info_ = base_info(manifest, range, config);
    info_.backend = backend_->name();
    info_.device = backend_->description();
    info_.weight_bytes = stack_.weight_bytes();
    info_.kv_budget_tokens =
        static_cast<uint64_t>(stack_.kv().total_blocks()) * stack_.kv().block_size();
  }

  const ModelInfo& info() const override { return info_; }
  void open(uint64_t session) override { stack_.kv().open(session); }
  void close(uint64_t session) override { stack_.kv().close(session); }
  int64_t length(uint64_t session) override { return stack_.kv().length(session); }
  void truncate(uint64_t session, int64_t length) override {
    stack_.kv().truncate(session, length);
  }
  void forward(uint64_t session, int32_t start, int32_t n_tokens, std::span<const float> in,
               std::span<float> out) override {
    const BatchEntry entry{session, n_tokens, start};
    stack_.forward(std::span<const BatchEntry>(&entry, 1), in, out);
  }
  uint64_t kv_used_tokens() override {
    KvCache& kv = stack_.kv();
    return static_cast<uint64_t>(kv.total_blocks() - kv.free_blocks()) * kv.block_size();
  }

 private:
  static LayerStackOptions stack_options(const ServerConfig& config) {
    LayerStackOptions options;
    options.kv.block_size = static_cast<int32_t>(config.kv_block_size);
    options.kv.budget_tokens = static_cast<int64_t>(config.kv_budget_tokens);
    options.max_batch_tokens = static_cast<int32_t>(config.max_tokens_per_call);
    return options;
  }

  FragmentStore store_;
  std::unique_ptr<Backend> backend_;
  LayerStack stack_;
  ModelInfo info_;
};

// Same session rules as the KV cache (whole blocks against the budget), no weights.
class NoopModel final : public ComputeModel {
 public:
  NoopModel(const ServerConfig& config, const Manifest& manifest, LayerRange range)
      : block_(config.kv_block_size) {
    info_ = base_info(manifest, range, config);
    info_.backend = "noop";
    info_.device = "none (compute \"noop\": returns the input unchanged)";
    total_blocks_ = (config.kv_budget_tokens + block_ - 1) / block_;
    info_.kv_budget_tokens = total_blocks_ * block_;
  }

  const ModelInfo& info() const override { return info_; }
  void open(uint64_t session) override {
    if (!lengths_.emplace(session, 0).second) {
      throw Error(ErrorCode::kEngineSession,
                  "session " + std::to_string(session) + " is already open");
    }
  }
  void close(uint64_t session) override {
    used_blocks_ -= blocks(get(session));
    lengths_.erase(session);
  }
  int64_t length(uint64_t session) override { return get(session); }
  void truncate(uint64_t session, int64_t length) override {
    int64_t& current = get(session);
    if (length < 0 || length > current) {
      throw Error(ErrorCode::kEnginePosition, "session " + std::to_string(session) +
                                                  ": truncate to " + std::to_string(length) +
                                                  " but the length is " + std::to_string(current));
    }
    used_blocks_ -= blocks(current) - blocks(length);
    current = length;
  }
  void forward(uint64_t session, int32_t start, int32_t n_tokens, std::span<const float> in,
               std::span<float> out) override {
    int64_t& current = get(session);
    if (start != current) {
      throw Error(ErrorCode::kEnginePosition, "session " + std::to_string(session) +
                                                  ": start position " + std::to_string(start) +
                                                  " is not the session length " +
                                                  std::to_string(current));
    }
    const uint64_t need = blocks(current + n_tokens) - blocks(current);
    if (used_blocks_ + need > total_blocks_) {
      throw Error(ErrorCode::kKvExhausted, "session " + std::to_string(session) + ": " +
                                               std::to_string(need) + " more KV blocks needed, " +
                                               std::to_string(total_blocks_ - used_blocks_) +
                                               " of " + std::to_string(total_blocks_) + " free");
    }
    used_blocks_ += need;
    current += n_tokens;
    if (in.data() != out.data()) std::memcpy(out.data(), in.data(), in.size_bytes());
  }
  uint64_t kv_used_tokens() override { return used_blocks_ * block_; }

 private:
  uint64_t blocks(int64_t tokens) const {
    return (static_cast<uint64_t>(tokens) + block_ - 1) / block_;
  }
  int64_t& get(uint64_t session) {
    auto it = lengths_.find(session);
    if (it == lengths_.end()) {
      throw Error(ErrorCode::kEngineSession, "session " + std::to_string(session) + " is not open");
    }
    return it->second;
  }

  uint64_t block_;
  uint64_t total_blocks_ = 0;
  uint64_t used_blocks_ = 0;
  std::map<uint64_t, int64_t> lengths_;
  ModelInfo info_;
};

}  // namespace

std::unique_ptr<ComputeModel> load_compute_model(const ServerConfig& config) {
  auto log = logger("server");
  const Manifest manifest = manifest_load(config.fragments_dir);
  // Detect the architecture again from the manifest's GGUF metadata and tensor shapes (as
  // split did) and insist it agrees with the recorded hyper-parameters.
  std::vector<TensorDesc> tensors;
  for (const ManifestFragment& f : manifest.fragments) {
    for (const ManifestTensor& t : f.tensors) tensors.push_back(TensorDesc{t.name, t.type, t.ne});
  }
  const ModelParams detected = detect_architecture(manifest.metadata, tensors);
  const ModelParams& recorded = manifest.params;
  if (detected.preset != recorded.preset || detected.dim != recorded.dim ||
      detected.n_layers != recorded.n_layers || detected.head_dim != recorded.head_dim ||
      detected.n_kv_heads != recorded.n_kv_heads || detected.ffn_dim != recorded.ffn_dim) {
    throw Error(ErrorCode::kArchShape,
                config.fragments_dir + "/manifest.json: its params (" + recorded.preset + ", dim " +
                    std::to_string(recorded.dim) + ", " + std::to_string(recorded.n_layers) +
                    " layers) disagree with the architecture detected from its metadata and "
                    "tensors (" +
                    detected.preset + ", dim " + std::to_string(detected.dim) + ", " +
                    std::to_string(detected.n_layers) + " layers)");
  }
  const LayerRange range =
      config.layers.empty()
          ? LayerRange{0, static_cast<int>(manifest.params.n_layers)}
          : LayerRange::parse(config.layers, static_cast<int>(manifest.params.n_layers));
  log->info("detected architecture {} (digest {}), serving layers {} of {}", detected.preset,
            manifest.digest.hex(), range.to_string(), manifest.params.n_layers);

  VerifyOptions verify;
  verify.jobs = config.verify_jobs != 0 ? config.verify_jobs
                                        : std::max(1u, std::thread::hardware_concurrency());
  verify.selection.layers = range;
  verify.selection.head = false;
  verify.selection.all = false;
  const VerifyReport report = store_verify(config.fragments_dir, verify);
  if (!report.ok()) {
    std::string what;
    for (const VerifyProblem& p : report.problems) {
      what += "\n  " + std::string(error_info(p.code).id) + " fragment " + p.file;
      if (!p.tensor.empty()) what += ": tensor " + p.tensor;
      what += ": " + p.detail;
    }
    throw Error(ErrorCode::kSrvVerify,
                config.fragments_dir + ": " + std::to_string(report.problems.size()) +
                    " problem(s) in the fragments of layers " + range.to_string() + ":" + what);
  }
  log->info("verified {} fragment file(s), {} bytes, in {:.2f} s", report.files_checked,
            report.bytes_checked, report.seconds);

  if (config.compute == "noop") return std::make_unique<NoopModel>(config, manifest, range);
  return std::make_unique<StackModel>(config, manifest, range);
}

}  // namespace lw
