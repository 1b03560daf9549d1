// Helpers shared by the GGUF tests: a small sample file holding every metadata value type
// and several tensor types, deterministic tensor bytes, and whole-file reads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "fragments/gguf.h"

namespace lw::test {

// Deterministic bytes for tensor `index` of `size` bytes.
inline std::vector<uint8_t> tensor_bytes(size_t index, uint64_t size) {
  std::mt19937_64 rng(0x5eed0000 + index);
  std::vector<uint8_t> bytes(size);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

// A producer writing tensor_bytes(index, size) for each tensor.
inline void produce_sample_bytes(size_t index, const TensorDesc& t, OutputFile& out) {
  uint64_t row = 0;
  row_size(t.type, t.ne[0], &row);
  std::vector<uint8_t> bytes = tensor_bytes(index, row * (t.n_elements() / t.ne[0]));
  out.write(bytes.data(), bytes.size());
}

// Every value type, nested arrays (an array of arrays of strings) and empty values, in the
// order a writer emits them. alignment 0 leaves general.alignment unset.
inline GgufMetadata sample_metadata(uint32_t alignment) {
  using T = GgufValueType;
  GgufMetadata m;
  m.emplace_back("general.architecture", GgufValue::string("llama"));
  if (alignment != 0) m.emplace_back("general.alignment", GgufValue::u32(alignment));
  m.emplace_back("test.u8", GgufValue{T::UINT8, uint64_t{200}});
  m.emplace_back("test.i8", GgufValue{T::INT8, int64_t{-100}});
  m.emplace_back("test.u16", GgufValue{T::UINT16, uint64_t{60000}});
  m.emplace_back("test.i16", GgufValue{T::INT16, int64_t{-30000}});
  m.emplace_back("test.u32", GgufValue::u32(4000000000u));
  m.emplace_back("test.i32", GgufValue::i32(-2000000000));
  m.emplace_back("test.f32", GgufValue::f32(0.15625f));
  m.emplace_back("test.bool", GgufValue::boolean(true));
  m.emplace_back("test.u64", GgufValue::u64(0xfedcba9876543210ull));
  m.emplace_back("test.i64", GgufValue{T::INT64, int64_t{INT64_MIN}});
  m.emplace_back("test.f64", GgufValue{T::FLOAT64, 3.141592653589793});
  m.emplace_back("test.empty_string", GgufValue::string(""));
  m.emplace_back("test.empty_array", GgufValue::array(T::INT32, {}));
  m.emplace_back(
      "test.u32_array",
      GgufValue::array(T::UINT32, {GgufValue::u32(1), GgufValue::u32(2), GgufValue::u32(3)}));
  m.emplace_back(
      "test.nested",
      GgufValue::array(
          T::ARRAY, {GgufValue::array(T::STRING, {GgufValue::string("a"), GgufValue::string("bc")}),
                     GgufValue::array(T::STRING, {}),
                     GgufValue::array(T::STRING, {GgufValue::string("def")})}));
  std::vector<GgufValue> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(GgufValue::string("tok" + std::to_string(i)));
  m.emplace_back("tokenizer.ggml.tokens", GgufValue::array(T::STRING, std::move(tokens)));
  return m;
}

// Tensor names have equal lengths so tests can rename one onto another.
inline std::vector<TensorDesc> sample_tensors() {
  return {{"blk.0.a", GgmlType::F32, {8, 3}},        {"blk.0.b", GgmlType::F16, {6}},
          {"blk.0.c", GgmlType::Q8_0, {64, 2}},      {"blk.0.d", GgmlType::Q4_K, {256}},
          {"blk.0.e", GgmlType::BF16, {2, 3, 2, 2}}, {"blk.0.f", GgmlType::Q6_K, {256, 1, 2}}};
}
// Their sizes in bytes, by hand: 8*3*4, 6*2, 2*(2*34), 144, 24*2, 2*210.
inline const std::vector<uint64_t> kSampleSizes = {96, 12, 136, 144, 48, 420};

inline GgufWriter sample_writer(uint32_t version, uint32_t alignment) {
  GgufWriter w(version);
  for (auto& [k, v] : sample_metadata(alignment)) w.set(k, v);
  for (const TensorDesc& t : sample_tensors()) w.add_tensor(t.name, t.type, t.ne);
  return w;
}

inline std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path) {
  MappedFile map(path);
  return std::vector<uint8_t>(map.data(), map.data() + map.size());
}

// Writes the sample file to `path` and returns its bytes.
inline std::vector<uint8_t> write_sample(const std::filesystem::path& path, uint32_t version = 3,
                                         uint32_t alignment = 0) {
  sample_writer(version, alignment).write(path, produce_sample_bytes);
  return read_file_bytes(path);
}

}  // namespace lw::test
