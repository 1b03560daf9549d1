#include "fragments/arch.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace lw {
namespace {

constexpr const char* kLayerSuffixes[] = {
    "attn_norm.weight", "attn_q.weight",   "attn_k.weight", "attn_v.weight",   "attn_output.weight",
    "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
};

const GgufValue* find_key(const GgufMetadata& metadata, std::string_view key) {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string shape_string(const std::vector<uint64_t>& ne) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < ne.size(); ++i) s << (i ? ", " : "") << ne[i];
  s << ']';
  return s.str();
}

// A u32 hyper-parameter: missing or not an integer that fits -> LW-GGUF-012; zero -> LW-ARCH-002.
bool read_u32(const GgufMetadata& metadata, const std::string& key, bool required, uint32_t* out) {
  const GgufValue* v = find_key(metadata, key);
  if (v == nullptr) {
    if (required) throw Error(ErrorCode::kGgufMissingKey, "metadata key " + key + " is missing");
    return false;
  }
  uint64_t value = 0;
  if (!v->is_integer() || !v->get_u64(&value) || value > UINT32_MAX) {
    throw Error(ErrorCode::kGgufMissingKey,
                "metadata key " + key + " must be a non-negative integer fitting in u32 (type " +
                    std::string(gguf_value_type_name(v->type)) + ")");
  }
  if (value == 0) throw Error(ErrorCode::kArchShape, "metadata key " + key + " is 0");
  *out = static_cast<uint32_t>(value);
  return true;
}

// An optional positive float hyper-parameter.
void read_positive_float(const GgufMetadata& metadata, const std::string& key, float* out) {
  const GgufValue* v = find_key(metadata, key);
  if (v == nullptr) return;
  double value = 0;
  if (v->type == GgufValueType::BOOL || v->type == GgufValueType::STRING ||
      v->type == GgufValueType::ARRAY || !v->get_f64(&value)) {
    throw Error(ErrorCode::kGgufMissingKey, "metadata key " + key + " must be a number (type " +
                                                std::string(gguf_value_type_name(v->type)) + ")");
  }
  if (!std::isfinite(value) || value <= 0 || value > 3.0e38) {
    std::ostringstream s;
    s << "metadata key " << key << " must be a positive finite number, got " << value;
    throw Error(ErrorCode::kArchShape, s.str());
  }
  *out = static_cast<float>(value);
}

// Parses "blk.N." with N canonical decimal; returns N or -1, and the suffix after the dot.
int64_t parse_layer(const std::string& name, std::string* suffix) {
  constexpr std::string_view kPrefix = "blk.";
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  size_t i = kPrefix.size();
  const size_t start = i;
  int64_t n = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
    if (i - start >= 9) return -1;  // far beyond any layer count
    n = n * 10 + (name[i] - '0');
    ++i;
  }
  if (i == start || i >= name.size() || name[i] != '.') return -1;
  if (name[start] == '0' && i - start > 1) return -1;  // "blk.01." is not canonical
  if (suffix != nullptr) *suffix = name.substr(i + 1);
  return n;
}

bool is_layer_suffix(const std::string& suffix) {
  for (const char* s : kLayerSuffixes) {
    if (suffix == s) return true;
  }
  return false;
}

// Why a tensor name is not part of the llama tensor set, for the LW-ARCH-003 message.
std::string classify_foreign(const std::string& name) {
  auto ends_with = [&](std::string_view s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (name.find("_exps") != std::string::npos || name.find("ffn_gate_inp") != std::string::npos ||
      name.find("_shexp") != std::string::npos) {
    return "a mixture-of-experts tensor (MoE models are not supported)";
  }
  if (ends_with(".bias")) return "a bias tensor (llama models have none)";
  if (name.find("rope_freqs") != std::string::npos) {
    return "a rope frequency-factor tensor (scaled RoPE is not supported)";
  }
  return "not a tensor of the llama architecture";
}

void check_shape(const TensorDesc& t, const std::vector<uint64_t>& expected) {
  // Trailing dims of 1 beyond the expected rank are tolerated (same data layout).
  bool ok = t.ne.size() >= expected.size();
  for (size_t i = 0; ok && i < t.ne.size(); ++i) {
    ok = i < expected.size() ? t.ne[i] == expected[i] : t.ne[i] == 1;
  }
  if (!ok) {
    throw Error(ErrorCode::kArchShape, "tensor " + t.name + ": shape " + shape_string(t.ne) +
                                           ", expected " + shape_string(expected));
  }
}

}  // namespace

int tensor_layer(const std::string& name) {
  const int64_t n = parse_layer(name, nullptr);
  return n < 0 || n > INT32_MAX ? -1 : static_cast<int>(n);
}

ModelParams detect_architecture(const GgufMetadata& metadata,
                                const std::vector<TensorDesc>& tensors) {
  ModelParams p;
  const GgufValue* arch = find_key(metadata, "general.architecture");
  if (arch == nullptr) {
    throw Error(ErrorCode::kGgufMissingKey, "metadata key general.architecture is missing");
  }
  const std::string* arch_name = arch->get_string();
  if (arch_name == nullptr) {
    throw Error(ErrorCode::kGgufMissingKey,
                "metadata key general.architecture must be a string (type " +
                    std::string(gguf_value_type_name(arch->type)) + ")");
  }
  if (*arch_name != "llama") {
    throw Error(ErrorCode::kArchUnsupported,
                "general.architecture is \"" + *arch_name + "\"; only \"llama\" is supported");
  }

  read_u32(metadata, "llama.block_count", true, &p.n_layers);
  read_u32(metadata, "llama.embedding_length", true, &p.dim);
  read_u32(metadata, "llama.attention.head_count", true, &p.n_heads);
  p.n_kv_heads = p.n_heads;
  read_u32(metadata, "llama.attention.head_count_kv", false, &p.n_kv_heads);
  if (!read_u32(metadata, "llama.attention.key_length", false, &p.head_dim)) {
    if (p.dim % p.n_heads != 0) {
      throw Error(ErrorCode::kArchShape, "llama.embedding_length " + std::to_string(p.dim) +
                                             " is not a multiple of llama.attention.head_count " +
                                             std::to_string(p.n_heads) +
                                             " and llama.attention.key_length is absent");
    }
    p.head_dim = p.dim / p.n_heads;
  }
  uint32_t value_length = 0;
  if (read_u32(metadata, "llama.attention.value_length", false, &value_length) &&
      value_length != p.head_dim) {
    throw Error(ErrorCode::kArchShape,
                "llama.attention.value_length " + std::to_string(value_length) +
                    " differs from llama.attention.key_length " + std::to_string(p.head_dim));
  }
  read_u32(metadata, "llama.feed_forward_length", true, &p.ffn_dim);
  read_u32(metadata, "llama.context_length", true, &p.context_length);
  read_positive_float(metadata, "llama.rope.freq_base", &p.rope_theta);
  read_positive_float(metadata, "llama.attention.layer_norm_rms_epsilon", &p.norm_eps);
  if (const GgufValue* tok = find_key(metadata, "tokenizer.ggml.model")) {
    const std::string* s = tok->get_string();
    if (s == nullptr) {
      throw Error(ErrorCode::kGgufMissingKey, "metadata key tokenizer.ggml.model must be a string");
    }
    p.tokenizer_model = *s;
  }

  if (p.n_kv_heads > p.n_heads || p.n_heads % p.n_kv_heads != 0) {
    throw Error(ErrorCode::kArchShape, "llama.attention.head_count " + std::to_string(p.n_heads) +
                                           " is not a multiple of llama.attention.head_count_kv " +
                                           std::to_string(p.n_kv_heads));
  }
  if (p.head_dim % 2 != 0) {
    throw Error(ErrorCode::kArchShape,
                "head dimension " + std::to_string(p.head_dim) + " is odd; RoPE needs pairs");
  }
  if (static_cast<uint64_t>(p.n_heads) * p.head_dim > UINT32_MAX) {
    throw Error(ErrorCode::kArchShape, "head_count x key_length overflows");
  }

  // Every tensor must belong to the llama set; then every required one must be present.
  std::map<std::string, const TensorDesc*> by_name;
  for (const TensorDesc& t : tensors) {
    std::string suffix;
    const int64_t layer = parse_layer(t.name, &suffix);
    bool known = false;
    if (layer >= 0) {
      if (is_layer_suffix(suffix) && layer >= static_cast<int64_t>(p.n_layers)) {
        throw Error(ErrorCode::kArchTensor,
                    "tensor " + t.name + " names layer " + std::to_string(layer) +
                        " but llama.block_count is " + std::to_string(p.n_layers));
      }
      known = is_layer_suffix(suffix);
    } else {
      known = t.name == "token_embd.weight" || t.name == "output_norm.weight" ||
              t.name == "output.weight";
    }
    if (!known)
      throw Error(ErrorCode::kArchTensor, "tensor " + t.name + ": " + classify_foreign(t.name));
    if (!by_name.emplace(t.name, &t).second) {
      throw Error(ErrorCode::kGgufDuplicate, "tensor " + t.name + " appears twice");
    }
  }
  auto require = [&](const std::string& name) -> const TensorDesc& {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      throw Error(ErrorCode::kGgufMissingTensor, "tensor " + name + " is missing");
    }
    return *it->second;
  };

  const TensorDesc& embd = require("token_embd.weight");
  if (embd.ne.size() < 2 || embd.ne[0] != p.dim || embd.ne[1] == 0 || embd.ne[1] > UINT32_MAX) {
    throw Error(ErrorCode::kArchShape, "tensor token_embd.weight: shape " + shape_string(embd.ne) +
                                           ", expected [" + std::to_string(p.dim) + ", vocab]");
  }
  p.vocab_size = static_cast<uint32_t>(embd.ne[1]);
  check_shape(embd, {p.dim, p.vocab_size});
  check_shape(require("output_norm.weight"), {p.dim});
  auto out = by_name.find("output.weight");
  p.tied_output = out == by_name.end();
  if (!p.tied_output) check_shape(*out->second, {p.dim, p.vocab_size});

  const uint64_t q = p.q_dim(), kv = p.kv_dim();
  for (uint32_t i = 0; i < p.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    check_shape(require(b + "attn_norm.weight"), {p.dim});
    check_shape(require(b + "attn_q.weight"), {p.dim, q});
    check_shape(require(b + "attn_k.weight"), {p.dim, kv});
    check_shape(require(b + "attn_v.weight"), {p.dim, kv});
    check_shape(require(b + "attn_output.weight"), {q, p.dim});
    check_shape(require(b + "ffn_norm.weight"), {p.dim});
    check_shape(require(b + "ffn_gate.weight"), {p.dim, p.ffn_dim});
    check_shape(require(b + "ffn_up.weight"), {p.dim, p.ffn_dim});
    check_shape(require(b + "ffn_down.weight"), {p.ffn_dim, p.dim});
  }

  if (const GgufValue* v = find_key(metadata, "llama.vocab_size")) {
    uint64_t n = 0;
    if (!v->is_integer() || !v->get_u64(&n)) {
      throw Error(ErrorCode::kGgufMissingKey, "metadata key llama.vocab_size must be an integer");
    }
    if (n != p.vocab_size) {
      throw Error(ErrorCode::kArchShape, "llama.vocab_size " + std::to_string(n) +
                                             " differs from token_embd.weight rows " +
                                             std::to_string(p.vocab_size));
    }
  }
  if (const GgufValue* v = find_key(metadata, "tokenizer.ggml.tokens")) {
    const GgufArray* a = v->get_array();
    if (a == nullptr || a->elem_type != GgufValueType::STRING) {
      throw Error(ErrorCode::kGgufMissingKey,
                  "metadata key tokenizer.ggml.tokens must be an array of strings");
    }
    if (a->items.size() != p.vocab_size) {
      throw Error(ErrorCode::kArchShape, "tokenizer.ggml.tokens has " +
                                             std::to_string(a->items.size()) +
                                             " entries but token_embd.weight has " +
                                             std::to_string(p.vocab_size) + " rows");
    }
  }

  // The preset is named by the per-layer shape and vocabulary, not the layer count, so a
  // partial model (e.g. synth --layers 2) of a known shape keeps its preset name.
  auto shape_is = [&](uint32_t dim, uint32_t heads, uint32_t kv_heads, uint32_t head_dim,
                      uint32_t ffn, uint32_t vocab) {
    return p.dim == dim && p.n_heads == heads && p.n_kv_heads == kv_heads &&
           p.head_dim == head_dim && p.ffn_dim == ffn && p.vocab_size == vocab;
  };
  if (shape_is(4096, 32, 8, 128, 14336, 32768)) {
    p.preset = "mistral-7b";
  } else if (shape_is(5120, 32, 8, 128, 32768, 131072)) {
    p.preset = "magistral-small";
  } else {
    p.preset = "llama-generic";
  }
  return p;
}

}  // namespace lw
