#include "engine/head.h"

#include <string>

#include "common/error.h"

namespace lw {

Head::Head(FragmentStore& store, Backend& backend)
    : backend_(backend), params_(store.manifest().params) {
  if (params_.dim == 0 || params_.vocab_size == 0) {
    throw Error(ErrorCode::kArchShape,
                "model " + params_.preset + ": dim " + std::to_string(params_.dim) + " and vocab " +
                    std::to_string(params_.vocab_size) + " must be positive");
  }
  const int64_t dim = params_.dim, vocab = params_.vocab_size;
  embd_ = weights_.add_matrix("token_embd.weight", vocab, dim);
  output_norm_ = weights_.add_vector("output_norm.weight", dim);
  output_ = params_.tied_output ? embd_ : weights_.add_matrix("output.weight", vocab, dim);
  weights_.load(store, backend_, store.dir().string() + ": head");
}

void Head::ensure(DeviceBuffer& buffer, uint64_t bytes) {
  if (buffer.size() >= bytes) return;
  buffer = DeviceBuffer();
  buffer = backend_.alloc(bytes);
}

void Head::check_tokens(std::span<const int32_t> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<int64_t>(tokens[i]) >= vocab_size()) {
      throw Error(ErrorCode::kEngineShape,
                  "token " + std::to_string(i) + " has id " + std::to_string(tokens[i]) +
                      ", outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    }
  }
}

void Head::embed_device(std::span<const int32_t> tokens, float* x) {
  check_tokens(tokens);
  if (tokens.empty()) return;
  ensure(tokens_, tokens.size_bytes());
  backend_.upload(tokens_, 0, tokens.data(), tokens.size_bytes());
  backend_.embed(weights_.matrix(embd_), tokens_.as<int32_t>(), static_cast<int64_t>(tokens.size()),
                 x);
}

void Head::logits_device(const float* x, int64_t n_tokens, float* out) {
  if (n_tokens <= 0) return;
  const int64_t dim = params_.dim;
  ensure(normed_, static_cast<uint64_t>(n_tokens * dim) * sizeof(float));
  backend_.rms_norm(x, weights_.vector(output_norm_), n_tokens, dim, params_.norm_eps,
                    normed_.as<float>());
  backend_.matmul(weights_.matrix(output_), normed_.as<float>(), n_tokens, out);
}

void Head::embed(std::span<const int32_t> tokens, std::span<float> hidden) {
  const uint64_t floats = tokens.size() * static_cast<uint64_t>(params_.dim);
  if (hidden.size() != floats) {
    throw Error(ErrorCode::kEngineShape, "embed: " + std::to_string(tokens.size()) +
                                             " tokens need " + std::to_string(floats) +
                                             " floats of output, got " +
                                             std::to_string(hidden.size()));
  }
  if (tokens.empty()) return;
  ensure(io_x_, floats * sizeof(float));
  embed_device(tokens, io_x_.as<float>());
  backend_.download(io_x_, 0, hidden.data(), floats * sizeof(float));
}

void Head::logits(std::span<const float> hidden, std::span<float> logits) {
  const uint64_t dim = params_.dim, vocab = params_.vocab_size;
  if (hidden.size() % dim != 0 || logits.size() != hidden.size() / dim * vocab) {
    throw Error(ErrorCode::kEngineShape,
                "logits: " + std::to_string(hidden.size()) + " floats of hidden state (dim " +
                    std::to_string(dim) + ") and " + std::to_string(logits.size()) +
                    " floats of logits (vocab " + std::to_string(vocab) + ") do not match");
  }
  const int64_t n = static_cast<int64_t>(hidden.size() / dim);
  if (n == 0) return;
  ensure(io_x_, hidden.size_bytes());
  ensure(io_out_, logits.size_bytes());
  backend_.upload(io_x_, 0, hidden.data(), hidden.size_bytes());
  logits_device(io_x_.as<float>(), n, io_out_.as<float>());
  backend_.download(io_out_, 0, logits.data(), logits.size_bytes());
}

}  // namespace lw
