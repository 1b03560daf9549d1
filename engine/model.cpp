#include "engine/model.h"

#include <limits>

#include "common/error.h"

namespace lw {

namespace {
void ensure(Backend& backend, DeviceBuffer& buffer, uint64_t bytes) {
  if (buffer.size() >= bytes) return;
  buffer = DeviceBuffer();
  buffer = backend.alloc(bytes);
}
}  // namespace

Model::Model(FragmentStore& store, Backend& backend, const ModelOptions& options)
    : head_(store, backend),
      layers_(store, LayerRange{0, static_cast<int>(store.manifest().params.n_layers)}, backend,
              options.stack) {}

std::vector<float> Model::forward(SessionId session, std::span<const int32_t> tokens,
                                  int32_t start) {
  if (tokens.empty()) throw Error(ErrorCode::kEngineShape, "forward: no tokens");
  head_.check_tokens(tokens);
  Backend& backend = head_.backend();
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > std::numeric_limits<int32_t>::max()) {
    throw Error(ErrorCode::kEngineShape, "forward: too many tokens");
  }
  const uint64_t dim = params().dim, vocab = params().vocab_size;
  ensure(backend, x_, n * dim * sizeof(float));
  ensure(backend, logits_, n * vocab * sizeof(float));
  head_.embed_device(tokens, x_.as<float>());
  const BatchEntry entry{session, static_cast<int32_t>(n), start};
  layers_.forward_device(std::span<const BatchEntry>(&entry, 1), x_.as<float>());
  head_.logits_device(x_.as<float>(), n, logits_.as<float>());
  std::vector<float> out(n * vocab);
  backend.download(logits_, 0, out.data(), out.size() * sizeof(float));
  return out;
}

std::vector<float> Model::eval(std::span<const int32_t> tokens) {
  const SessionId session = next_temp_session_++;
  layers_.kv().open(session);
  try {
    std::vector<float> out = forward(session, tokens, 0);
    layers_.kv().close(session);
    return out;
  } catch (...) {
    layers_.kv().close(session);
    throw;
  }
}

}  // namespace lw
