#include "fragments/manifest.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/file_util.h"

namespace lw {
namespace {

using json = nlohmann::json;

constexpr int kMaxArrayDepth = 32;
constexpr uint64_t kMaxFileSize = uint64_t{1} << 56;

[[noreturn]] void fail(const std::string& source, const std::string& path,
                       const std::string& what) {
  throw Error(ErrorCode::kManifestParse, source + ": field " + path + ": " + what);
}

// ---- UTF-8 (strings that are not valid UTF-8 are stored as {"hex": ...}) ----

bool valid_utf8(const std::string& s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

std::string to_hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool from_hex(const std::string& hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (size_t k = 0; k < 2; ++k) {
      char c = hex[i + k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    out->push_back(static_cast<char>(v));
  }
  return true;
}

// ---- a checked view of one JSON object ----

class Fields {
 public:
  Fields(const json& obj, std::string path, const std::string& source)
      : obj_(obj), path_(std::move(path)), source_(source) {
    if (!obj.is_object()) {
      fail(source_, path_.empty() ? "(top level)" : path_, "expected an object, got " + type_of(obj));
    }
  }
  // Every field must have been read: unknown fields are refused, never ignored.
  void done() const {
    for (const auto& item : obj_.items()) {
      if (!used_.count(item.key())) fail(source_, sub(item.key()), "unknown field");
    }
  }

  std::string sub(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  const std::string& source() const { return source_; }

  const json& at(const std::string& key) {
    auto it = obj_.find(key);
    if (it == obj_.end()) fail(source_, sub(key), "missing");
    used_.insert(key);
    return *it;
  }
  uint64_t u64(const std::string& key, uint64_t max = std::numeric_limits<uint64_t>::max()) {
    const json& v = at(key);
    if (!v.is_number_unsigned()) fail(source_, sub(key), "expected an unsigned integer, got " + type_of(v));
    uint64_t x = v.get<uint64_t>();
    if (x > max) {
      fail(source_, sub(key), std::to_string(x) + " exceeds " + std::to_string(max));
    }
    return x;
  }
  uint32_t u32(const std::string& key) {
    return static_cast<uint32_t>(u64(key, std::numeric_limits<uint32_t>::max()));
  }
  int64_t i64(const std::string& key, int64_t min, int64_t max) {
    const json& v = at(key);
    if (!v.is_number_integer()) fail(source_, sub(key), "expected an integer, got " + type_of(v));
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(max)) {
      fail(source_, sub(key), v.dump() + " exceeds " + std::to_string(max));
    }
    int64_t x = v.get<int64_t>();
    if (x < min || x > max) {
      fail(source_, sub(key), std::to_string(x) + " outside [" + std::to_string(min) + ", " +
                                  std::to_string(max) + "]");
    }
    return x;
  }
  float f32(const std::string& key) {
    const json& v = at(key);
    if (!v.is_number_float()) fail(source_, sub(key), "expected a number, got " + type_of(v));
    double d = v.get<double>();
    if (static_cast<double>(static_cast<float>(d)) != d) {
      fail(source_, sub(key), v.dump() + " is not exactly an f32");
    }
    return static_cast<float>(d);
  }
  bool boolean(const std::string& key) {
    const json& v = at(key);
    if (!v.is_boolean()) fail(source_, sub(key), "expected true or false, got " + type_of(v));
    return v.get<bool>();
  }
  std::string str(const std::string& key) {
    const json& v = at(key);
    if (!v.is_string()) fail(source_, sub(key), "expected a string, got " + type_of(v));
    return v.get<std::string>();
  }
  Hash128 hash(const std::string& key) {
    std::string text = str(key);
    Hash128 h;
    if (!Hash128::from_hex(text, &h)) {
      fail(source_, sub(key), "\"" + text.substr(0, 40) + "\" is not 32 lowercase hex digits");
    }
    return h;
  }
  const json& array(const std::string& key) {
    const json& v = at(key);
    if (!v.is_array()) fail(source_, sub(key), "expected an array, got " + type_of(v));
    return v;
  }

  static std::string type_of(const json& v) {
    if (v.is_number_float()) return "a float";
    if (v.is_number_integer()) return "an integer";
    return std::string("a") + (v.is_object() || v.is_array() ? "n " : " ") + v.type_name();
  }

 private:
  const json& obj_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> used_;
};

// ---- GGUF metadata values ----

bool value_type_from_name(const std::string& name, GgufValueType* out) {
  for (uint32_t t = 0; t <= static_cast<uint32_t>(GgufValueType::FLOAT64); ++t) {
    if (gguf_value_type_name(static_cast<GgufValueType>(t)) == name) {
      *out = static_cast<GgufValueType>(t);
      return true;
    }
  }
  return false;
}

json string_to_json(const std::string& s) {
  if (valid_utf8(s)) return s;
  return json{{"hex", to_hex(s)}};
}

json value_to_json(const GgufValue& v);

// The JSON of a value of `type` (the type itself is written by the caller).
json payload_to_json(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64: return std::get<uint64_t>(v.value);
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64: return std::get<int64_t>(v.value);
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: {
      double d = std::get<double>(v.value);
      if (std::isnan(d)) return "nan";
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      return d;
    }
    case GgufValueType::BOOL: return std::get<bool>(v.value);
    case GgufValueType::STRING: return string_to_json(std::get<std::string>(v.value));
    case GgufValueType::ARRAY: {
      const GgufArray& a = std::get<GgufArray>(v.value);
      json items = json::array();
      for (const GgufValue& item : a.items) items.push_back(payload_to_json(item));
      return json{{"elem", gguf_value_type_name(a.elem_type)}, {"value", std::move(items)}};
    }
  }
  LW_CHECK(false, "unknown GgufValueType " + std::to_string(static_cast<uint32_t>(v.type)));
  return nullptr;
}

json value_to_json(const GgufValue& v) {
  if (v.type == GgufValueType::ARRAY) {
    json j = payload_to_json(v);
    j["type"] = "array";
    return j;
  }
  return json{{"type", gguf_value_type_name(v.type)}, {"value", payload_to_json(v)}};
}

GgufValue payload_from_json(GgufValueType type, const json& j, const std::string& path,
                            const std::string& source, int depth);

GgufArray array_from_json(Fields& f, const std::string& source, int depth) {
  if (depth > kMaxArrayDepth) fail(source, f.sub("value"), "arrays nested too deeply");
  GgufArray a;
  std::string elem = f.str("elem");
  if (!value_type_from_name(elem, &a.elem_type)) {
    fail(source, f.sub("elem"), "unknown value type \"" + elem + "\"");
  }
  const json& items = f.array("value");
  a.items.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    a.items.push_back(payload_from_json(a.elem_type, items[i],
                                        f.sub("value") + "[" + std::to_string(i) + "]", source,
                                        depth + 1));
  }
  f.done();
  return a;
}

GgufValue payload_from_json(GgufValueType type, const json& j, const std::string& path,
                            const std::string& source, int depth) {
  GgufValue v;
  v.type = type;
  auto want = [&](const char* what) {
    fail(source, path, std::string("expected ") + what + " for type " +
                           std::string(gguf_value_type_name(type)) + ", got " +
                           Fields::type_of(j));
  };
  switch (type) {
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64: {
      if (!j.is_number_unsigned()) want("an unsigned integer");
      uint64_t x = j.get<uint64_t>();
      int bits = type == GgufValueType::UINT8 ? 8 : type == GgufValueType::UINT16 ? 16
                 : type == GgufValueType::UINT32 ? 32 : 64;
      if (bits < 64 && x >> bits) fail(source, path, j.dump() + " does not fit in " + std::to_string(bits) + " bits");
      v.value = x;
      return v;
    }
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64: {
      if (!j.is_number_integer()) want("an integer");
      int bits = type == GgufValueType::INT8 ? 8 : type == GgufValueType::INT16 ? 16
                 : type == GgufValueType::INT32 ? 32 : 64;
      if (j.is_number_unsigned() && j.get<uint64_t>() > (uint64_t{1} << (bits - 1)) - 1) {
        fail(source, path, j.dump() + " does not fit in a signed " + std::to_string(bits) + "-bit integer");
      }
      int64_t x = j.get<int64_t>();
      if (bits < 64 && (x < -(int64_t{1} << (bits - 1)) || x >= (int64_t{1} << (bits - 1)))) {
        fail(source, path, j.dump() + " does not fit in a signed " + std::to_string(bits) + "-bit integer");
      }
      v.value = x;
      return v;
    }
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: {
      double d;
      if (j.is_number_float()) {
        d = j.get<double>();
      } else if (j.is_string() && j.get<std::string>() == "nan") {
        d = std::numeric_limits<double>::quiet_NaN();
      } else if (j.is_string() && j.get<std::string>() == "inf") {
        d = std::numeric_limits<double>::infinity();
      } else if (j.is_string() && j.get<std::string>() == "-inf") {
        d = -std::numeric_limits<double>::infinity();
      } else {
        want("a float or \"nan\", \"inf\", \"-inf\"");
      }
      if (type == GgufValueType::FLOAT32 && std::isfinite(d) &&
          static_cast<double>(static_cast<float>(d)) != d) {
        fail(source, path, j.dump() + " is not exactly an f32");
      }
      v.value = d;
      return v;
    }
    case GgufValueType::BOOL:
      if (!j.is_boolean()) want("true or false");
      v.value = j.get<bool>();
      return v;
    case GgufValueType::STRING: {
      if (j.is_string()) {
        v.value = j.get<std::string>();
        return v;
      }
      if (!j.is_object()) want("a string or {\"hex\": ...}");
      Fields f(j, path, source);
      std::string bytes, hex = f.str("hex");
      if (!from_hex(hex, &bytes)) fail(source, f.sub("hex"), "not lowercase hex");
      if (valid_utf8(bytes)) fail(source, f.sub("hex"), "valid UTF-8 must be a plain string");
      f.done();
      v.value = std::move(bytes);
      return v;
    }
    case GgufValueType::ARRAY: {
      Fields f(j, path, source);
      v.value = array_from_json(f, source, depth);
      return v;
    }
  }
  fail(source, path, "unknown value type");
}

GgufValue value_from_json(const json& j, const std::string& path, const std::string& source) {
  Fields f(j, path, source);
  std::string type_name = f.str("type");
  GgufValueType type;
  if (!value_type_from_name(type_name, &type)) {
    fail(source, f.sub("type"), "unknown value type \"" + type_name + "\"");
  }
  if (type == GgufValueType::ARRAY) {
    GgufValue v;
    v.type = type;
    v.value = array_from_json(f, source, 1);
    return v;  // array_from_json called f.done()
  }
  GgufValue v = payload_from_json(type, f.at("value"), f.sub("value"), source, 1);
  f.done();
  return v;
}

// ---- the manifest structure ----

bool ggml_type_from_name(const std::string& name, GgmlType* out) {
  for (uint32_t id = 0; id < 256; ++id) {
    const TypeTraits* t = type_traits(id);
    if (t != nullptr && t->name == name) {
      *out = static_cast<GgmlType>(id);
      return true;
    }
  }
  return false;
}

json params_to_json(const ModelParams& p) {
  return json{{"preset", p.preset},
              {"n_layers", p.n_layers},
              {"dim", p.dim},
              {"n_heads", p.n_heads},
              {"n_kv_heads", p.n_kv_heads},
              {"head_dim", p.head_dim},
              {"ffn_dim", p.ffn_dim},
              {"vocab_size", p.vocab_size},
              {"context_length", p.context_length},
              {"rope_theta", static_cast<double>(p.rope_theta)},
              {"norm_eps", static_cast<double>(p.norm_eps)},
              {"tied_output", p.tied_output},
              {"tokenizer_model", p.tokenizer_model}};
}

ModelParams params_from_json(const json& j, const std::string& source) {
  Fields f(j, "params", source);
  ModelParams p;
  p.preset = f.str("preset");
  p.n_layers = f.u32("n_layers");
  p.dim = f.u32("dim");
  p.n_heads = f.u32("n_heads");
  p.n_kv_heads = f.u32("n_kv_heads");
  p.head_dim = f.u32("head_dim");
  p.ffn_dim = f.u32("ffn_dim");
  p.vocab_size = f.u32("vocab_size");
  p.context_length = f.u32("context_length");
  p.rope_theta = f.f32("rope_theta");
  p.norm_eps = f.f32("norm_eps");
  p.tied_output = f.boolean("tied_output");
  p.tokenizer_model = f.str("tokenizer_model");
  f.done();
  if (p.preset.empty()) fail(source, "params.preset", "empty");
  if (p.n_layers == 0) fail(source, "params.n_layers", "0");
  return p;
}

json tensor_to_json(const ManifestTensor& t) {
  return json{{"name", t.name},
              {"type", type_name(static_cast<uint32_t>(t.type))},
              {"ne", t.ne},
              {"offset", t.offset},
              {"size", t.size},
              {"gguf_offset", t.gguf_offset},
              {"xxh3", t.xxh3.hex()}};
}

ManifestTensor tensor_from_json(const json& j, const std::string& path, const std::string& source) {
  Fields f(j, path, source);
  ManifestTensor t;
  t.name = f.str("name");
  if (t.name.empty() || t.name.size() > 0xffff) {
    fail(source, f.sub("name"), "length " + std::to_string(t.name.size()) + " outside 1..65535");
  }
  std::string type = f.str("type");
  if (!ggml_type_from_name(type, &t.type)) {
    fail(source, f.sub("type"), "unknown tensor type \"" + type + "\"");
  }
  const json& ne = f.array("ne");
  if (ne.empty() || ne.size() > 4) {
    fail(source, f.sub("ne"), std::to_string(ne.size()) + " dims (expected 1..4)");
  }
  uint64_t rows = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (!ne[i].is_number_unsigned() || ne[i].get<uint64_t>() == 0) {
      fail(source, f.sub("ne") + "[" + std::to_string(i) + "]", "expected a positive integer");
    }
    t.ne.push_back(ne[i].get<uint64_t>());
    if (i > 0 && !checked_mul(rows, t.ne[i], &rows)) fail(source, f.sub("ne"), "overflows");
  }
  t.offset = f.u64("offset", kMaxFileSize);
  t.size = f.u64("size", kMaxFileSize);
  t.gguf_offset = f.u64("gguf_offset", kMaxFileSize);
  t.xxh3 = f.hash("xxh3");
  f.done();
  uint64_t row = 0, expect = 0;
  if (!row_size(t.type, t.ne[0], &row) || !checked_mul(row, rows, &expect) || expect != t.size) {
    fail(source, f.sub("size"), std::to_string(t.size) + " does not match type " + type +
                                    " and ne (expected " + std::to_string(expect) + ")");
  }
  return t;
}

json fragment_to_json(const ManifestFragment& frag) {
  json tensors = json::array();
  for (const ManifestTensor& t : frag.tensors) tensors.push_back(tensor_to_json(t));
  return json{{"file", frag.file},
              {"role", fragment_role_name(static_cast<uint32_t>(frag.role))},
              {"layer", frag.layer},
              {"size", frag.size},
              {"xxh3", frag.xxh3.hex()},
              {"tensors", std::move(tensors)}};
}

bool safe_file_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == kManifestFile) return false;
  if (name.find_first_of(std::string("/\\\0", 3)) != std::string::npos) return false;
  if (name[0] == '.') return false;
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".lwf") == 0;
}

ManifestFragment fragment_from_json(const json& j, const std::string& path,
                                    const std::string& source) {
  Fields f(j, path, source);
  ManifestFragment frag;
  frag.file = f.str("file");
  if (!safe_file_name(frag.file)) {
    fail(source, f.sub("file"), "\"" + frag.file + "\" is not a plain \"*.lwf\" file name");
  }
  std::string role = f.str("role");
  if (!fragment_role_from_name(role, &frag.role)) {
    fail(source, f.sub("role"), "unknown role \"" + role + "\"");
  }
  frag.layer = static_cast<int32_t>(f.i64("layer", -1, std::numeric_limits<int32_t>::max()));
  if ((frag.role == FragmentRole::Layer) != (frag.layer >= 0)) {
    fail(source, f.sub("layer"), std::to_string(frag.layer) + " for role " + role);
  }
  frag.size = f.u64("size", kMaxFileSize);
  frag.xxh3 = f.hash("xxh3");
  const json& tensors = f.array("tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    frag.tensors.push_back(
        tensor_from_json(tensors[i], f.sub("tensors") + "[" + std::to_string(i) + "]", source));
  }
  f.done();
  // The offsets and size must be exactly the writer's layout (fragment_format.h).
  if (frag.role != FragmentRole::GgufHeader) {
    FragmentPrefix prefix;
    prefix.header.role = static_cast<uint32_t>(frag.role);
    prefix.header.layer = frag.layer;
    for (const ManifestTensor& t : frag.tensors) {
      FragmentTensorEntry e{};
      e.size = t.size;
      prefix.entries.push_back(e);
      prefix.names.push_back(t.name);
    }
    fragment_layout(&prefix);
    for (size_t i = 0; i < frag.tensors.size(); ++i) {
      if (frag.tensors[i].offset != prefix.entries[i].offset) {
        fail(source, f.sub("tensors") + "[" + std::to_string(i) + "].offset",
             std::to_string(frag.tensors[i].offset) + ", the layout puts it at " +
                 std::to_string(prefix.entries[i].offset));
      }
    }
    if (frag.size != prefix.header.file_size) {
      fail(source, f.sub("size"), std::to_string(frag.size) + ", the layout gives " +
                                      std::to_string(prefix.header.file_size));
    }
  } else if (!frag.tensors.empty()) {
    fail(source, f.sub("tensors"), "a gguf_header fragment holds no tensors");
  }
  return frag;
}

json manifest_object(const Manifest& m, bool with_digest) {
  json metadata = json::object();
  for (const auto& [key, value] : m.metadata) metadata[key] = value_to_json(value);
  json gaps = json::array();
  for (const GgufGap& g : m.gguf_gaps) gaps.push_back(json{{"offset", g.offset}, {"hex", g.hex}});
  json fragments = json::array();
  for (const ManifestFragment& f : m.fragments) fragments.push_back(fragment_to_json(f));
  json j{{"version", m.version},
         {"params", params_to_json(m.params)},
         {"metadata", std::move(metadata)},
         {"gguf", json{{"version", m.gguf_version},
                       {"alignment", m.gguf_alignment},
                       {"size", m.gguf_size},
                       {"data_offset", m.gguf_data_offset},
                       {"xxh3", m.gguf_xxh3.hex()},
                       {"gaps", std::move(gaps)}}},
         {"fragments", std::move(fragments)}};
  if (with_digest) j["digest"] = m.digest.hex();
  return j;
}

Hash128 digest_of(const json& without_digest) {
  std::string text = without_digest.dump();
  return xxh3_128(text.data(), text.size());
}

// Cross-field rules: one fragment per role and layer, unique names, tensors inside the data
// section and not overlapping each other or a gap.
void check_structure(const Manifest& m, const std::string& source) {
  std::set<std::string> files, names;
  std::vector<int> layer_seen(m.params.n_layers, 0);
  int header = 0, embedding = 0, output = 0;
  uint64_t data_size = m.gguf_size - m.gguf_data_offset;
  struct Span {
    uint64_t begin, end;
    std::string what;
  };
  std::vector<Span> spans;
  for (size_t i = 0; i < m.fragments.size(); ++i) {
    const ManifestFragment& f = m.fragments[i];
    std::string path = "fragments[" + std::to_string(i) + "]";
    if (!files.insert(f.file).second) fail(source, path + ".file", "duplicate \"" + f.file + "\"");
    switch (f.role) {
      case FragmentRole::GgufHeader:
        ++header;
        if (f.size != sizeof(FragmentHeader) + m.gguf_data_offset) {
          fail(source, path + ".size", std::to_string(f.size) + ", expected 64 + gguf.data_offset = " +
                                           std::to_string(sizeof(FragmentHeader) + m.gguf_data_offset));
        }
        break;
      case FragmentRole::Embedding: ++embedding; break;
      case FragmentRole::Output: ++output; break;
      case FragmentRole::Layer:
        if (static_cast<uint32_t>(f.layer) >= m.params.n_layers) {
          fail(source, path + ".layer", std::to_string(f.layer) + " >= params.n_layers " +
                                            std::to_string(m.params.n_layers));
        }
        if (layer_seen[f.layer]++) fail(source, path + ".layer", "duplicate layer " + std::to_string(f.layer));
        break;
    }
    for (size_t k = 0; k < f.tensors.size(); ++k) {
      const ManifestTensor& t = f.tensors[k];
      std::string tpath = path + ".tensors[" + std::to_string(k) + "]";
      if (!names.insert(t.name).second) fail(source, tpath + ".name", "duplicate \"" + t.name + "\"");
      uint64_t end = 0;
      if (!checked_add(t.gguf_offset, t.size, &end) || end > data_size) {
        fail(source, tpath + ".gguf_offset", std::to_string(t.gguf_offset) + " + size " +
                                                 std::to_string(t.size) +
                                                 " runs past the GGUF data section (" +
                                                 std::to_string(data_size) + " bytes)");
      }
      spans.push_back({t.gguf_offset, end, "tensor " + t.name});
    }
  }
  if (header != 1) fail(source, "fragments", std::to_string(header) + " gguf_header fragments (expected 1)");
  if (embedding != 1) fail(source, "fragments", std::to_string(embedding) + " embedding fragments (expected 1)");
  if (output != 1) fail(source, "fragments", std::to_string(output) + " output fragments (expected 1)");
  for (uint32_t l = 0; l < m.params.n_layers; ++l) {
    if (!layer_seen[l]) fail(source, "fragments", "no fragment for layer " + std::to_string(l));
  }
  for (size_t i = 0; i < m.gguf_gaps.size(); ++i) {
    const GgufGap& g = m.gguf_gaps[i];
    uint64_t end = 0;
    if (!checked_add(g.offset, g.hex.size() / 2, &end) || end > data_size) {
      fail(source, "gguf.gaps[" + std::to_string(i) + "]", "runs past the GGUF data section");
    }
    spans.push_back({g.offset, end, "gguf.gaps[" + std::to_string(i) + "]"});
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].begin < spans[i - 1].end) {
      fail(source, "fragments", spans[i - 1].what + " and " + spans[i].what + " overlap in the GGUF");
    }
  }
}

}  // namespace

const ManifestFragment* Manifest::find_fragment(std::string_view file) const {
  for (const ManifestFragment& f : fragments) {
    if (f.file == file) return &f;
  }
  return nullptr;
}

const ManifestFragment* Manifest::layer_fragment(int layer) const {
  for (const ManifestFragment& f : fragments) {
    if (f.role == FragmentRole::Layer && f.layer == layer) return &f;
  }
  return nullptr;
}

std::pair<const ManifestFragment*, const ManifestTensor*> Manifest::find_tensor(
    std::string_view name) const {
  for (const ManifestFragment& f : fragments) {
    for (const ManifestTensor& t : f.tensors) {
      if (t.name == name) return {&f, &t};
    }
  }
  return {nullptr, nullptr};
}

Hash128 manifest_digest(const Manifest& manifest) {
  return digest_of(manifest_object(manifest, false));
}

std::string manifest_to_json(const Manifest& manifest) {
  return manifest_object(manifest, true).dump(2) + "\n";
}

Manifest manifest_from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(ErrorCode::kManifestParse, source + ": not valid JSON: " + e.what());
  }
  // The digest first: any edit of a well-formed file reads as an edit, not as a bad field.
  Manifest m;
  {
    Fields top(j, "", source);
    Hash128 stored = top.hash("digest");
    json rest = j;
    rest.erase("digest");
    m.digest = digest_of(rest);
    if (m.digest != stored) {
      throw Error(ErrorCode::kManifestDigest,
                  source + ": digest mismatch (manifest says " + stored.hex() +
                      ", contents hash to " + m.digest.hex() + "): the file was edited or damaged");
    }
  }
  {
    Fields f(j, "", source);
    (void)f.at("digest");
    m.version = f.u32("version");
    if (m.version != kManifestVersion) {
      fail(source, "version", std::to_string(m.version) + " (this build reads version " +
                                  std::to_string(kManifestVersion) + ")");
    }
    m.params = params_from_json(f.at("params"), source);
    const json& metadata = f.at("metadata");
    if (!metadata.is_object()) fail(source, "metadata", "expected an object");
    for (const auto& [key, value] : metadata.items()) {
      if (key.empty()) fail(source, "metadata", "empty key");
      m.metadata.emplace_back(key, value_from_json(value, "metadata." + key, source));
    }
    Fields g(f.at("gguf"), "gguf", source);
    m.gguf_version = g.u32("version");
    if (m.gguf_version != 2 && m.gguf_version != 3) {
      fail(source, "gguf.version", std::to_string(m.gguf_version) + " (expected 2 or 3)");
    }
    m.gguf_alignment = g.u64("alignment", uint64_t{1} << 30);
    if (!std::has_single_bit(m.gguf_alignment)) {
      fail(source, "gguf.alignment", std::to_string(m.gguf_alignment) + " is not a power of two");
    }
    m.gguf_size = g.u64("size", kMaxFileSize);
    m.gguf_data_offset = g.u64("data_offset", m.gguf_size);
    m.gguf_xxh3 = g.hash("xxh3");
    const json& gaps = g.array("gaps");
    for (size_t i = 0; i < gaps.size(); ++i) {
      std::string path = "gguf.gaps[" + std::to_string(i) + "]";
      Fields gf(gaps[i], path, source);
      GgufGap gap;
      gap.offset = gf.u64("offset", kMaxFileSize);
      gap.hex = gf.str("hex");
      std::string bytes;
      if (gap.hex.empty() || !from_hex(gap.hex, &bytes)) {
        fail(source, path + ".hex", "expected non-empty lowercase hex");
      }
      gf.done();
      m.gguf_gaps.push_back(std::move(gap));
    }
    const json& fragments = f.array("fragments");
    for (size_t i = 0; i < fragments.size(); ++i) {
      m.fragments.push_back(
          fragment_from_json(fragments[i], "fragments[" + std::to_string(i) + "]", source));
    }
    g.done();
    f.done();
  }
  check_structure(m, source);
  return m;
}

Manifest manifest_load(const std::filesystem::path& dir) {
  std::filesystem::path path = dir / kManifestFile;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kManifestParse,
                path.string() + ": missing (not a fragment store, or its split did not finish)");
  }
  return manifest_from_json(read_text_file(path), path.string());
}

}  // namespace lw
