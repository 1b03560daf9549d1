#include "fragments/manifest.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

using json = nlohmann::json;
using T = GgufValueType;

GgufValue uval(T type, uint64_t v) { return {type, v}; }
GgufValue ival(T type, int64_t v) { return {type, v}; }
GgufValue fval(T type, double v) { return {type, v}; }

ManifestTensor tensor(const std::string& name, GgmlType type, std::vector<uint64_t> ne,
                      uint64_t size) {
  ManifestTensor t;
  t.name = name;
  t.type = type;
  t.ne = std::move(ne);
  t.size = size;
  t.xxh3 = xxh3_128(name.data(), name.size());
  return t;
}

// A small, fully valid manifest with one value of every GGUF metadata type.
Manifest sample_manifest() {
  Manifest m;
  m.params.preset = "llama-generic";
  m.params.n_layers = 1;
  m.params.dim = 32;
  m.params.n_heads = 4;
  m.params.n_kv_heads = 2;
  m.params.head_dim = 8;
  m.params.ffn_dim = 64;
  m.params.vocab_size = 4;
  m.params.context_length = 128;
  m.params.rope_theta = 1e6f;
  m.params.norm_eps = 1e-5f;
  m.params.tokenizer_model = "llama";
  m.metadata = {
      {"a.u8", uval(T::UINT8, 255)},
      {"a.i8", ival(T::INT8, -128)},
      {"a.u16", uval(T::UINT16, 65535)},
      {"a.i16", ival(T::INT16, -32768)},
      {"a.u32", GgufValue::u32(4000000000u)},
      {"a.i32", GgufValue::i32(-2147483647 - 1)},
      {"a.u64", GgufValue::u64(std::numeric_limits<uint64_t>::max())},
      {"a.i64", ival(T::INT64, std::numeric_limits<int64_t>::min())},
      {"a.f32", GgufValue::f32(1e-5f)},
      {"a.f32_nan", GgufValue::f32(std::numeric_limits<float>::quiet_NaN())},
      {"a.f32_inf", GgufValue::f32(std::numeric_limits<float>::infinity())},
      {"a.f32_ninf", GgufValue::f32(-std::numeric_limits<float>::infinity())},
      {"a.f32_negzero", GgufValue::f32(-0.0f)},
      {"a.f64", fval(T::FLOAT64, 3.141592653589793)},
      {"a.f64_tiny", fval(T::FLOAT64, 4.9406564584124654e-324)},
      {"a.bool", GgufValue::boolean(true)},
      {"a.string", GgufValue::string("h\xc3\xa9llo \"quoted\"\n\t")},
      {"a.string_empty", GgufValue::string("")},
      {"a.string_binary", GgufValue::string(std::string("\xff\xfe\x00z", 4))},
      {"a.array_empty", GgufValue::array(T::INT32, {})},
      {"a.array_u8", GgufValue::array(T::UINT8, {uval(T::UINT8, 0), uval(T::UINT8, 7)})},
      {"a.array_f32", GgufValue::array(T::FLOAT32, {GgufValue::f32(0.5f),
                                                    GgufValue::f32(-INFINITY)})},
      {"a.array_str", GgufValue::array(T::STRING, {GgufValue::string("<s>"),
                                                   GgufValue::string(std::string("\x80", 1))})},
      {"a.array_nested",
       GgufValue::array(T::ARRAY, {GgufValue::array(T::BOOL, {GgufValue::boolean(false)}),
                                   GgufValue::array(T::STRING, {})})},
  };
  std::sort(m.metadata.begin(), m.metadata.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  m.gguf_version = 3;
  m.gguf_alignment = 32;
  m.gguf_data_offset = 1024;
  m.gguf_xxh3 = {1, 2};

  auto make = [](std::string file, FragmentRole role, int layer, std::vector<ManifestTensor> ts) {
    ManifestFragment f;
    f.file = std::move(file);
    f.role = role;
    f.layer = layer;
    f.tensors = std::move(ts);
    f.xxh3 = xxh3_128(f.file.data(), f.file.size());
    return f;
  };
  m.fragments.push_back(make("gguf_header.lwf", FragmentRole::GgufHeader, -1, {}));
  m.fragments.push_back(make("embedding.lwf", FragmentRole::Embedding, -1,
                             {tensor("token_embd.weight", GgmlType::F32, {32, 4}, 512)}));
  m.fragments.push_back(make("blk.0.lwf", FragmentRole::Layer, 0,
                             {tensor("blk.0.attn_norm.weight", GgmlType::F32, {32}, 128),
                              tensor("blk.0.attn_q.weight", GgmlType::Q8_0, {32, 32}, 34 * 32)}));
  m.fragments.push_back(make("output.lwf", FragmentRole::Output, -1,
                             {tensor("output_norm.weight", GgmlType::F32, {32}, 128)}));
  m.fragments[0].size = 64 + m.gguf_data_offset;
  uint64_t gguf_pos = 0;
  for (ManifestFragment& f : m.fragments) {
    if (f.role == FragmentRole::GgufHeader) continue;
    FragmentPrefix p;
    p.header.role = static_cast<uint32_t>(f.role);
    p.header.layer = f.layer;
    for (const ManifestTensor& t : f.tensors) {
      FragmentTensorEntry e{};
      e.size = t.size;
      p.entries.push_back(e);
      p.names.push_back(t.name);
    }
    fragment_layout(&p);
    for (size_t i = 0; i < f.tensors.size(); ++i) {
      f.tensors[i].offset = p.entries[i].offset;
      f.tensors[i].gguf_offset = gguf_pos;
      gguf_pos = align_up(gguf_pos + f.tensors[i].size, 32);
    }
    f.size = p.header.file_size;
  }
  m.gguf_gaps.push_back({gguf_pos, "00ff01"});
  m.gguf_size = m.gguf_data_offset + gguf_pos + 3;
  m.digest = manifest_digest(m);
  return m;
}

// Re-stamps the digest of an edited manifest the way split computes it: xxh3-128 of the
// compact dump of the object without "digest".
std::string restamp(json j) {
  j.erase("digest");
  std::string compact = j.dump();
  j["digest"] = xxh3_128(compact.data(), compact.size()).hex();
  return j.dump(2);
}

const GgufValue& meta(const Manifest& m, const std::string& key) {
  for (const auto& [k, v] : m.metadata) {
    if (k == key) return v;
  }
  ADD_FAILURE() << "no key " << key;
  static GgufValue none;
  return none;
}

TEST(ManifestTest, RoundTripKeepsEveryValueAndType) {
  Manifest m = sample_manifest();
  std::string text = manifest_to_json(m);
  Manifest back = manifest_from_json(text, "sample");
  EXPECT_EQ(manifest_to_json(back), text);
  EXPECT_EQ(back.digest, m.digest);
  ASSERT_EQ(back.metadata.size(), m.metadata.size());
  for (size_t i = 0; i < m.metadata.size(); ++i) {
    EXPECT_EQ(back.metadata[i].first, m.metadata[i].first);
    EXPECT_EQ(back.metadata[i].second.type, m.metadata[i].second.type) << m.metadata[i].first;
  }
  EXPECT_EQ(std::get<uint64_t>(meta(back, "a.u64").value), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(std::get<int64_t>(meta(back, "a.i64").value), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(std::get<int64_t>(meta(back, "a.i8").value), -128);
  EXPECT_EQ(std::get<double>(meta(back, "a.f32").value), static_cast<double>(1e-5f));
  EXPECT_TRUE(std::isnan(std::get<double>(meta(back, "a.f32_nan").value)));
  EXPECT_EQ(std::get<double>(meta(back, "a.f32_inf").value), INFINITY);
  EXPECT_EQ(std::get<double>(meta(back, "a.f32_ninf").value), -INFINITY);
  EXPECT_TRUE(std::signbit(std::get<double>(meta(back, "a.f32_negzero").value)));
  EXPECT_EQ(std::get<double>(meta(back, "a.f64").value), 3.141592653589793);
  EXPECT_EQ(std::get<double>(meta(back, "a.f64_tiny").value), 4.9406564584124654e-324);
  EXPECT_EQ(std::get<bool>(meta(back, "a.bool").value), true);
  EXPECT_EQ(std::get<std::string>(meta(back, "a.string").value), "h\xc3\xa9llo \"quoted\"\n\t");
  EXPECT_EQ(std::get<std::string>(meta(back, "a.string_binary").value),
            std::string("\xff\xfe\x00z", 4));
  const GgufArray& empty = std::get<GgufArray>(meta(back, "a.array_empty").value);
  EXPECT_EQ(empty.elem_type, T::INT32);
  EXPECT_TRUE(empty.items.empty());
  const GgufArray& strs = std::get<GgufArray>(meta(back, "a.array_str").value);
  ASSERT_EQ(strs.items.size(), 2u);
  EXPECT_EQ(std::get<std::string>(strs.items[1].value), std::string("\x80", 1));
  const GgufArray& nested = std::get<GgufArray>(meta(back, "a.array_nested").value);
  ASSERT_EQ(nested.items.size(), 2u);
  EXPECT_EQ(nested.items[0].type, T::ARRAY);
  EXPECT_EQ(std::get<GgufArray>(nested.items[0].value).elem_type, T::BOOL);
  EXPECT_EQ(std::get<GgufArray>(nested.items[1].value).elem_type, T::STRING);

  EXPECT_EQ(back.params.rope_theta, 1e6f);
  EXPECT_EQ(back.params.norm_eps, 1e-5f);
  EXPECT_EQ(back.gguf_size, m.gguf_size);
  EXPECT_EQ(back.gguf_xxh3, m.gguf_xxh3);
  ASSERT_EQ(back.gguf_gaps.size(), 1u);
  EXPECT_EQ(back.gguf_gaps[0].hex, "00ff01");
  ASSERT_EQ(back.fragments.size(), 4u);
  EXPECT_EQ(back.fragments[2].tensors[1].type, GgmlType::Q8_0);
  EXPECT_EQ(back.fragments[2].tensors[1].xxh3, m.fragments[2].tensors[1].xxh3);
  EXPECT_EQ(back.fragments[2].tensors[1].offset, m.fragments[2].tensors[1].offset);
}

TEST(ManifestTest, StoredTypesAndSpecialFloatsAreSpelledOut) {
  json j = json::parse(manifest_to_json(sample_manifest()));
  EXPECT_EQ(j["metadata"]["a.u32"], json({{"type", "u32"}, {"value", 4000000000u}}));
  EXPECT_EQ(j["metadata"]["a.f32_nan"]["value"], "nan");
  EXPECT_EQ(j["metadata"]["a.f32_ninf"]["value"], "-inf");
  EXPECT_EQ(j["metadata"]["a.string_binary"]["value"], json({{"hex", "fffe007a"}}));
  EXPECT_EQ(j["metadata"]["a.array_str"]["elem"], "string");
  EXPECT_EQ(j["metadata"]["a.array_nested"]["value"][0]["elem"], "bool");
  EXPECT_EQ(j["fragments"][2]["tensors"][1]["type"], "q8_0");
}

TEST(ManifestTest, WhitespaceDoesNotChangeTheDigest) {
  json j = json::parse(manifest_to_json(sample_manifest()));
  EXPECT_NO_THROW(manifest_from_json(j.dump(), "compact"));
  EXPECT_NO_THROW(manifest_from_json(j.dump(7), "wide"));
}

// Visits every leaf value (by JSON pointer) except the digest itself.
void leaves(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>* out) {
  if (j.is_object()) {
    for (const auto& item : j.items()) leaves(item.value(), at / item.key(), out);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) leaves(j[i], at / i, out);
  } else if (at.to_string() != "/digest") {
    out->push_back(at);
  }
}

TEST(ManifestTest, DigestDetectsAnyEdit) {
  const std::string text = manifest_to_json(sample_manifest());
  const json original = json::parse(text);
  std::vector<json::json_pointer> paths;
  leaves(original, json::json_pointer(), &paths);
  ASSERT_GT(paths.size(), 80u);
  std::string stored = original["digest"];
  for (const auto& path : paths) {
    json j = original;
    json& v = j[path];
    if (v.is_boolean()) v = !v.get<bool>();
    else if (v.is_number_unsigned()) v = v.get<uint64_t>() ^ 1;
    else if (v.is_number_integer()) v = v.get<int64_t>() ^ 1;
    else if (v.is_number_float()) v = v.get<double>() * 2 + 1;
    else if (v.is_string()) v = v.get<std::string>() + "0";
    else v = 0;
    try {
      manifest_from_json(j.dump(2), "edited");
      ADD_FAILURE() << "edit at " << path.to_string() << " was not detected";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kManifestDigest) << path.to_string() << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(stored), std::string::npos) << e.what();
    }
  }
  // Structural edits too: a removed key, an added key, a dropped array element.
  std::vector<std::function<void(json&)>> edits = {
      [](json& j) { j["params"].erase("dim"); },
      [](json& j) { j["params"]["extra"] = 1; },
      [](json& j) { j["fragments"][2]["tensors"].erase(1); },
      [](json& j) { j["metadata"].erase("a.bool"); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    json j = original;
    edits[i](j);
    try {
      manifest_from_json(j.dump(), "edited");
      ADD_FAILURE() << "structural edit " << i << " was not detected";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kManifestDigest) << i << ": " << e.what();
    }
  }
}

struct Malformed {
  const char* name;
  std::function<void(json&)> edit;
  const char* field;  // must appear in the message
};

TEST(ManifestTest, MalformedFieldsAreNamed) {
  const json original = json::parse(manifest_to_json(sample_manifest()));
  const std::vector<Malformed> cases = {
      {"missing param", [](json& j) { j["params"].erase("dim"); }, "params.dim"},
      {"param wrong type", [](json& j) { j["params"]["n_heads"] = "4"; }, "params.n_heads"},
      {"param negative", [](json& j) { j["params"]["ffn_dim"] = -1; }, "params.ffn_dim"},
      {"param not f32", [](json& j) { j["params"]["norm_eps"] = 0.1; }, "params.norm_eps"},
      {"unknown field", [](json& j) { j["params"]["colour"] = "red"; }, "params.colour"},
      {"unknown top field", [](json& j) { j["extra"] = true; }, "extra"},
      {"version", [](json& j) { j["version"] = 2; }, "version"},
      {"u8 too large", [](json& j) { j["metadata"]["a.u8"]["value"] = 256; }, "metadata.a.u8.value"},
      {"i16 too small", [](json& j) { j["metadata"]["a.i16"]["value"] = -32769; }, "metadata.a.i16.value"},
      {"unknown value type", [](json& j) { j["metadata"]["a.u8"]["type"] = "u128"; }, "metadata.a.u8.type"},
      {"bool as int", [](json& j) { j["metadata"]["a.bool"]["value"] = 1; }, "metadata.a.bool.value"},
      {"f32 not exact", [](json& j) { j["metadata"]["a.f32"]["value"] = 0.1; }, "metadata.a.f32.value"},
      {"bad float word", [](json& j) { j["metadata"]["a.f64"]["value"] = "NaN"; }, "metadata.a.f64.value"},
      {"array elem", [](json& j) { j["metadata"]["a.array_u8"]["elem"] = "x"; }, "metadata.a.array_u8.elem"},
      {"array item", [](json& j) { j["metadata"]["a.array_u8"]["value"][1] = -7; }, "metadata.a.array_u8.value[1]"},
      {"hex string not hex", [](json& j) { j["metadata"]["a.string_binary"]["value"]["hex"] = "zz"; }, "metadata.a.string_binary.value.hex"},
      {"gguf version", [](json& j) { j["gguf"]["version"] = 4; }, "gguf.version"},
      {"gguf alignment", [](json& j) { j["gguf"]["alignment"] = 24; }, "gguf.alignment"},
      {"gguf xxh3", [](json& j) { j["gguf"]["xxh3"] = "abc"; }, "gguf.xxh3"},
      {"gap hex", [](json& j) { j["gguf"]["gaps"][0]["hex"] = "0"; }, "gguf.gaps[0].hex"},
      {"file with slash", [](json& j) { j["fragments"][1]["file"] = "../embedding.lwf"; }, "fragments[1].file"},
      {"role", [](json& j) { j["fragments"][1]["role"] = "decoder"; }, "fragments[1].role"},
      {"layer for role", [](json& j) { j["fragments"][2]["layer"] = -1; }, "fragments[2].layer"},
      {"layer out of range", [](json& j) { j["fragments"][2]["layer"] = 5; }, "fragments[2].layer"},
      {"file xxh3 upper case", [](json& j) {
         std::string h = j["fragments"][2]["xxh3"];
         for (char& c : h) c = static_cast<char>(std::toupper(c));
         j["fragments"][2]["xxh3"] = h.substr(0, 31) + "G";
       }, "fragments[2].xxh3"},
      {"tensor type", [](json& j) { j["fragments"][2]["tensors"][1]["type"] = "q9_X"; }, "fragments[2].tensors[1].type"},
      {"tensor size", [](json& j) { j["fragments"][2]["tensors"][1]["size"] = 1000; }, "fragments[2].tensors[1].size"},
      {"tensor ne zero", [](json& j) { j["fragments"][2]["tensors"][0]["ne"][0] = 0; }, "fragments[2].tensors[0].ne[0]"},
      {"tensor 5 dims", [](json& j) { j["fragments"][2]["tensors"][0]["ne"] = {32, 1, 1, 1, 1}; }, "fragments[2].tensors[0].ne"},
      {"tensor offset", [](json& j) { j["fragments"][2]["tensors"][1]["offset"] = 512; }, "fragments[2].tensors[1].offset"},
      {"fragment size", [](json& j) { j["fragments"][2]["size"] = 1; }, "fragments[2].size"},
      {"header size", [](json& j) { j["fragments"][0]["size"] = 1; }, "fragments[0].size"},
      {"duplicate file", [](json& j) { j["fragments"][3]["file"] = "blk.0.lwf"; }, "fragments[3].file"},
      {"duplicate tensor", [](json& j) { j["fragments"][3]["tensors"][0]["name"] = "blk.0.attn_norm.weight"; }, "fragments[3].tensors[0].name"},
      {"tensor past gguf", [](json& j) { j["fragments"][3]["tensors"][0]["gguf_offset"] = 1u << 20; }, "fragments[3].tensors[0].gguf_offset"},
      {"overlapping tensors", [](json& j) { j["fragments"][3]["tensors"][0]["gguf_offset"] = 0; }, "overlap"},
      {"no output fragment", [](json& j) { j["fragments"].erase(3); }, "output fragments"},
      {"fragments not array", [](json& j) { j["fragments"] = json::object(); }, "fragments"},
      {"top level array", [](json& j) { j = json::array({j}); }, "top level"},
  };
  for (const Malformed& c : cases) {
    json j = original;
    c.edit(j);
    std::string text = j.is_object() ? restamp(j) : j.dump();
    try {
      manifest_from_json(text, "bad.json");
      ADD_FAILURE() << c.name << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kManifestParse) << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.field), std::string::npos)
          << c.name << ": message does not name " << c.field << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
    }
  }
}

TEST(ManifestTest, NotJsonOrNoDigestIsMalformed) {
  std::string text = manifest_to_json(sample_manifest());
  for (const std::string& bad : {text.substr(0, text.size() / 2), std::string(""),
                                 std::string("{\"version\": 1}"), std::string("[1, 2]"),
                                 std::string("{\"digest\": \"xyz\"}")}) {
    try {
      manifest_from_json(bad, "m.json");
      ADD_FAILURE() << "accepted: " << bad.substr(0, 40);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kManifestParse) << e.what();
    }
  }
}

TEST(ManifestTest, LoadReportsAMissingManifest) {
  test::TempDir dir;
  try {
    manifest_load(dir.path());
    FAIL() << "loaded a manifest from an empty folder";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kManifestParse);
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  write_text_file(dir / kManifestFile, manifest_to_json(sample_manifest()));
  EXPECT_EQ(manifest_load(dir.path()).digest, sample_manifest().digest);
}

TEST(ManifestTest, Lookups) {
  Manifest m = sample_manifest();
  ASSERT_NE(m.find_fragment("blk.0.lwf"), nullptr);
  EXPECT_EQ(m.find_fragment("blk.0.lwf")->layer, 0);
  EXPECT_EQ(m.find_fragment("blk.1.lwf"), nullptr);
  EXPECT_EQ(m.layer_fragment(0), m.find_fragment("blk.0.lwf"));
  EXPECT_EQ(m.layer_fragment(1), nullptr);
  auto [f, t] = m.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(f->file, "blk.0.lwf");
  EXPECT_EQ(t->size, 34u * 32);
  EXPECT_EQ(m.find_tensor("nope").second, nullptr);
}

}  // namespace
}  // namespace lw
