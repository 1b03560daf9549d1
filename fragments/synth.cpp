#include "fragments/synth.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "fragments/gguf.h"
#include "fragments/quant.h"
#include "fragments/synth_quant.h"
#include "fragments/synth_vocab.h"

namespace lw {
namespace {

constexpr uint32_t kMaxSynthVocab = 1u << 20;
constexpr float kMatrixStd = 0.02f;  // like a trained model's weights
constexpr float kNormSpread = 0.1f;  // norm weights are 1 + kNormSpread * N(0, 1)
constexpr uint64_t kBatchBytes = 8u << 20;

enum class Mix { kF32, kF16, kQ8_0, kQ4_K_M };

Mix parse_mix(const std::string& quant) {
  if (quant == "f32") return Mix::kF32;
  if (quant == "f16") return Mix::kF16;
  if (quant == "q8_0") return Mix::kQ8_0;
  if (quant == "q4_k_m") return Mix::kQ4_K_M;
  throw Error(ErrorCode::kSynthOption,
              "synth: quant \"" + quant + "\" is not one of q4_k_m, q8_0, f16, f32");
}

// llama.cpp's llama_ftype values for general.file_type.
uint32_t file_type(Mix mix) {
  switch (mix) {
    case Mix::kF32:
      return 0;  // LLAMA_FTYPE_ALL_F32
    case Mix::kF16:
      return 1;  // LLAMA_FTYPE_MOSTLY_F16
    case Mix::kQ8_0:
      return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case Mix::kQ4_K_M:
      return 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  }
  return 0;
}

// llama.cpp's use_more_bits(): the layers where Q4_K_M spends Q6_K on attn_v and ffn_down.
bool use_more_bits(uint32_t i, uint32_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// A wanted encoding, degraded when the row length does not fit its block: K-quants fall
// back to Q8_0 (row not a multiple of 256), Q8_0 to F16 (row not a multiple of 32).
GgmlType fit(GgmlType type, uint64_t row) {
  if ((type == GgmlType::Q4_K || type == GgmlType::Q6_K) && row % kQK_K != 0) type = GgmlType::Q8_0;
  if (type == GgmlType::Q8_0 && row % kQK8_0 != 0) type = GgmlType::F16;
  return type;
}

enum class Role { kEmbedding, kNorm, kMatrix, kOutput, kAttnV, kFfnDown };

GgmlType tensor_type(Mix mix, Role role, uint32_t layer, uint32_t n_layers, uint64_t row) {
  if (role == Role::kNorm || mix == Mix::kF32) return GgmlType::F32;
  if (mix == Mix::kF16) return GgmlType::F16;
  if (mix == Mix::kQ8_0) return fit(GgmlType::Q8_0, row);
  // Q4_K_M, as llama.cpp's llama_tensor_get_type() picks it for a llama model.
  if (role == Role::kOutput) return fit(GgmlType::Q6_K, row);
  if ((role == Role::kAttnV || role == Role::kFfnDown) && use_more_bits(layer, n_layers)) {
    return fit(GgmlType::Q6_K, row);
  }
  return fit(GgmlType::Q4_K, row);
}

struct TensorPlan {
  std::string name;
  GgmlType type;
  std::vector<uint64_t> ne;
  bool norm;
  uint64_t row_bytes;
  uint64_t rows() const { return ne.size() > 1 ? ne[1] : 1; }
};

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Row `row` of tensor `tensor`: mean + std * g with g ~ N(0, 1) approximated by the sum of
// four uniform 16-bit draws (Irwin-Hall, |g| < 3.5). Depends only on (seed, tensor, row),
// so the bytes do not depend on the thread count.
void fill_row(uint64_t seed, uint64_t tensor, uint64_t row, float mean, float std, float* dst,
              uint64_t n) {
  uint64_t state = seed ^ 0x5851F42D4C957F2Dull;
  state = splitmix64(state) ^ (tensor << 40) ^ row;
  splitmix64(state);
  const float scale = std * (1.7320508f / 65536.0f);  // sqrt(3) / 2^16: unit variance
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t r = splitmix64(state);
    const int64_t sum = static_cast<int64_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) +
                                             ((r >> 32) & 0xFFFF) + (r >> 48)) -
                        131070;
    dst[i] = mean + scale * static_cast<float>(sum);
  }
}

// K-quants take synth's single-pass encoders (ggml's iterative reference search would make
// a 7B model take many minutes); the other types are cheap in lw::quantize_row.
void encode_row(GgmlType type, const float* src, uint8_t* dst, uint64_t n) {
  if (type == GgmlType::Q4_K) {
    synth_quantize_q4_k(src, reinterpret_cast<BlockQ4_K*>(dst), static_cast<int64_t>(n));
  } else if (type == GgmlType::Q6_K) {
    synth_quantize_q6_k(src, reinterpret_cast<BlockQ6_K*>(dst), static_cast<int64_t>(n));
  } else {
    quantize_row(type, src, dst, static_cast<int64_t>(n));
  }
}

// Runs body(row_begin, row_end) over [0, rows) on `threads` threads (the caller's included);
// the first exception is rethrown here.
template <typename Body>
void parallel_rows(uint64_t rows, unsigned threads, const Body& body) {
  const uint64_t grain = std::max<uint64_t>(1, rows / (threads * 8ull));
  std::atomic<uint64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      for (;;) {
        const uint64_t begin = next.fetch_add(grain);
        if (begin >= rows) return;
        body(begin, std::min(rows, begin + grain));
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(rows);
    }
  };
  std::vector<std::thread> pool;
  const unsigned extra = static_cast<unsigned>(std::min<uint64_t>(threads - 1, rows / grain));
  for (unsigned i = 0; i < extra; ++i) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

SynthShape resolve_shape(const SynthOptions& options) {
  SynthShape s = options.shape ? *options.shape : synth_preset(options.preset);
  if (options.layers == 0 || options.layers < -1) {
    throw Error(ErrorCode::kSynthOption,
                "synth: layers " + std::to_string(options.layers) + " must be >= 1");
  }
  if (options.layers >= 1) s.n_layers = static_cast<uint32_t>(options.layers);
  auto bad = [](const std::string& what) {
    throw Error(ErrorCode::kSynthOption, "synth: " + what);
  };
  if (s.dim == 0 || s.n_layers == 0 || s.n_heads == 0 || s.n_kv_heads == 0 || s.head_dim == 0 ||
      s.ffn_dim == 0 || s.context_length == 0) {
    bad("every dimension of the shape must be >= 1");
  }
  if (s.n_heads % s.n_kv_heads != 0) {
    bad("heads " + std::to_string(s.n_heads) + " not a multiple of kv heads " +
        std::to_string(s.n_kv_heads));
  }
  if (s.head_dim % 2 != 0) bad("head_dim " + std::to_string(s.head_dim) + " is odd");
  if (s.vocab_size < kSynthFirstPiece || s.vocab_size > kMaxSynthVocab) {
    bad("vocab " + std::to_string(s.vocab_size) + " outside " + std::to_string(kSynthFirstPiece) +
        ".." + std::to_string(kMaxSynthVocab));
  }
  if (!(s.rope_theta > 0) || !std::isfinite(s.rope_theta) || !(s.norm_eps > 0) ||
      !std::isfinite(s.norm_eps)) {
    bad("rope_theta and norm_eps must be positive");
  }
  if (options.gguf_version != 2 && options.gguf_version != 3) {
    bad("gguf_version " + std::to_string(options.gguf_version) + " is not 2 or 3");
  }
  return s;
}

std::vector<TensorPlan> plan_tensors(const SynthShape& s, Mix mix) {
  std::vector<TensorPlan> plans;
  auto add = [&](std::string name, Role role, uint32_t layer, std::vector<uint64_t> ne) {
    const GgmlType type = tensor_type(mix, role, layer, s.n_layers, ne[0]);
    uint64_t bytes = 0;
    LW_CHECK(row_size(type, ne[0], &bytes), name);
    plans.push_back(TensorPlan{std::move(name), type, std::move(ne), role == Role::kNorm, bytes});
  };
  const uint64_t q = uint64_t{s.n_heads} * s.head_dim, kv = uint64_t{s.n_kv_heads} * s.head_dim;
  add("token_embd.weight", Role::kEmbedding, 0, {s.dim, s.vocab_size});
  for (uint32_t i = 0; i < s.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", Role::kNorm, i, {s.dim});
    add(b + "attn_q.weight", Role::kMatrix, i, {s.dim, q});
    add(b + "attn_k.weight", Role::kMatrix, i, {s.dim, kv});
    add(b + "attn_v.weight", Role::kAttnV, i, {s.dim, kv});
    add(b + "attn_output.weight", Role::kMatrix, i, {q, s.dim});
    add(b + "ffn_norm.weight", Role::kNorm, i, {s.dim});
    add(b + "ffn_gate.weight", Role::kMatrix, i, {s.dim, s.ffn_dim});
    add(b + "ffn_up.weight", Role::kMatrix, i, {s.dim, s.ffn_dim});
    add(b + "ffn_down.weight", Role::kFfnDown, i, {s.ffn_dim, s.dim});
  }
  add("output_norm.weight", Role::kNorm, 0, {s.dim});
  add("output.weight", Role::kOutput, 0, {s.dim, s.vocab_size});
  return plans;
}

void set_metadata(GgufWriter& w, const SynthOptions& options, const SynthShape& s, Mix mix) {
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("general.name", GgufValue::string("layerwire-synth " +
                                          (options.shape ? std::string("custom") : options.preset) +
                                          " " + options.quant));
  w.set("general.file_type", GgufValue::u32(file_type(mix)));
  w.set("general.alignment", GgufValue::u32(32));
  if (mix == Mix::kQ8_0 || mix == Mix::kQ4_K_M) {
    w.set("general.quantization_version", GgufValue::u32(2));
  }
  w.set("llama.vocab_size", GgufValue::u32(s.vocab_size));
  w.set("llama.context_length", GgufValue::u32(s.context_length));
  w.set("llama.embedding_length", GgufValue::u32(s.dim));
  w.set("llama.block_count", GgufValue::u32(s.n_layers));
  w.set("llama.feed_forward_length", GgufValue::u32(s.ffn_dim));
  w.set("llama.rope.dimension_count", GgufValue::u32(s.head_dim));
  w.set("llama.attention.head_count", GgufValue::u32(s.n_heads));
  w.set("llama.attention.head_count_kv", GgufValue::u32(s.n_kv_heads));
  w.set("llama.attention.key_length", GgufValue::u32(s.head_dim));
  w.set("llama.attention.value_length", GgufValue::u32(s.head_dim));
  w.set("llama.rope.freq_base", GgufValue::f32(s.rope_theta));
  w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(s.norm_eps));

  SynthVocab vocab = synth_vocab(s.vocab_size);
  std::vector<GgufValue> tokens, scores, types;
  tokens.reserve(s.vocab_size);
  scores.reserve(s.vocab_size);
  types.reserve(s.vocab_size);
  for (uint32_t i = 0; i < s.vocab_size; ++i) {
    tokens.push_back(GgufValue::string(std::move(vocab.tokens[i])));
    scores.push_back(GgufValue::f32(vocab.scores[i]));
    types.push_back(GgufValue::i32(vocab.types[i]));
  }
  w.set("tokenizer.ggml.model", GgufValue::string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, std::move(tokens)));
  w.set("tokenizer.ggml.scores", GgufValue::array(GgufValueType::FLOAT32, std::move(scores)));
  w.set("tokenizer.ggml.token_type", GgufValue::array(GgufValueType::INT32, std::move(types)));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
  w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
}

}  // namespace

SynthShape synth_preset(const std::string& preset) {
  SynthShape s;  // the defaults are "tiny"
  if (preset == "tiny") return s;
  if (preset == "tiny-magistral") {
    s.dim = 512;  // head_dim 32 != 512 / 8, as magistral's 128 != 5120 / 32
    s.rope_theta = 1.0e9f;
    return s;
  }
  if (preset == "mistral-7b") {
    return SynthShape{.dim = 4096,
                      .n_layers = 32,
                      .n_heads = 32,
                      .n_kv_heads = 8,
                      .head_dim = 128,
                      .ffn_dim = 14336,
                      .vocab_size = 32768,
                      .context_length = 32768,
                      .rope_theta = 1.0e6f,
                      .norm_eps = 1e-5f};
  }
  if (preset == "magistral-small") {
    return SynthShape{.dim = 5120,
                      .n_layers = 40,
                      .n_heads = 32,
                      .n_kv_heads = 8,
                      .head_dim = 128,
                      .ffn_dim = 32768,
                      .vocab_size = 131072,
                      .context_length = 40960,
                      .rope_theta = 1.0e9f,
                      .norm_eps = 1e-5f};
  }
  throw Error(ErrorCode::kSynthOption,
              "synth: preset \"" + preset +
                  "\" is not one of tiny, tiny-magistral, mistral-7b, magistral-small");
}

void synth_model(const SynthOptions& options, const std::filesystem::path& out) {
  const Mix mix = parse_mix(options.quant);
  const SynthShape shape = resolve_shape(options);
  const std::vector<TensorPlan> plans = plan_tensors(shape, mix);

  GgufWriter writer(options.gguf_version);
  set_metadata(writer, options, shape, mix);
  uint64_t total = 0;
  for (const TensorPlan& p : plans) {
    writer.add_tensor(p.name, p.type, p.ne);
    total += p.row_bytes * p.rows();
  }

  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, 64u);
  std::vector<uint8_t> buffers[2];
  uint64_t done = 0;
  if (options.progress) options.progress(0, total);
  writer.write(out, [&](size_t index, const TensorDesc& t, OutputFile& file) {
    const TensorPlan& p = plans[index];
    LW_CHECK(t.name == p.name, t.name + " vs " + p.name);
    const uint64_t row = p.ne[0];
    const float mean = p.norm ? 1.0f : 0.0f;
    const float std = p.norm ? kNormSpread : kMatrixStd;
    const uint64_t rows = p.rows();
    const uint64_t batch_rows = std::max<uint64_t>(1, kBatchBytes / p.row_bytes);
    // Generates and encodes rows [first, first + batch_rows) into `buf` on all threads.
    auto compute = [&](uint64_t first, std::vector<uint8_t>& buf) {
      const uint64_t n = std::min(batch_rows, rows - first);
      buf.resize(n * p.row_bytes);
      parallel_rows(n, threads, [&](uint64_t begin, uint64_t end) {
        std::vector<float> values(row);
        for (uint64_t r = begin; r < end; ++r) {
          fill_row(options.seed, index, first + r, mean, std, values.data(), row);
          encode_row(p.type, values.data(), buf.data() + r * p.row_bytes, row);
        }
      });
    };
    // Double-buffered: batch k + 1 is computed while batch k is written, in file order.
    compute(0, buffers[0]);
    for (uint64_t first = 0, slot = 0; first < rows; first += batch_rows, slot ^= 1) {
      const uint64_t next = first + batch_rows;
      std::exception_ptr ahead_error;
      {
        std::jthread ahead;  // joined at scope exit, also when the write throws
        if (next < rows) {
          ahead = std::jthread([&, next, slot] {
            try {
              compute(next, buffers[slot ^ 1]);
            } catch (...) {
              ahead_error = std::current_exception();
            }
          });
        }
        file.write(buffers[slot].data(), buffers[slot].size());
        done += buffers[slot].size();
        if (options.progress) options.progress(done, total);
      }
      if (ahead_error) std::rethrow_exception(ahead_error);
    }
  });
}

}  // namespace lw
