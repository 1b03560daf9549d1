// GGUF reader (versions 2 and 3, memory-mapped) and writer.
//
// Byte layout (little-endian):
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//     string = u64 len | bytes;  array = u32 elem_type | u64 count | elems (nested allowed)
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32)
//   data section: tensor bytes at data_offset + offset, each offset aligned
// ne[0] is the row length (input features): dims are reversed from numpy.
// The reader checks every count, offset and size (overflow-safe) before use and throws
// lw::Error (LW-GGUF-*) naming the field and values; it never reads out of bounds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "common/file_util.h"
#include "fragments/quant.h"

namespace lw {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType type);  // "u8", ..., "array"

struct GgufValue;
struct GgufArray {
  GgufValueType elem_type = GgufValueType::UINT8;
  std::vector<GgufValue> items;
};

// One metadata value. `type` keeps the stored width so the writer reproduces it exactly;
// integers are held widened (unsigned in u64, signed in i64), floats in double.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue array(GgufValueType elem_type, std::vector<GgufValue> items);

  bool is_integer() const;
  // Accessors return false when the value is not of a compatible kind or does not fit.
  bool get_u64(uint64_t* out) const;
  bool get_i64(int64_t* out) const;
  bool get_f64(double* out) const;  // any integer or float type
  const std::string* get_string() const;
  const GgufArray* get_array() const;
};

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;  // file order

// What architecture detection and the manifest need of a tensor.
struct TensorDesc {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> ne;  // ne[0] = row length
  uint64_t n_elements() const;
};

struct GgufTensorInfo : TensorDesc {
  uint64_t offset = 0;  // relative to the data section
  uint64_t size = 0;    // bytes, from type and ne
};

class GgufFile {
 public:
  // Maps and parses `path`; throws LW-IO-* / LW-GGUF-*.
  static GgufFile open(const std::filesystem::path& path);
  // Parses bytes owned by the caller (must outlive the object); `name` appears in errors.
  static GgufFile parse(const uint8_t* data, size_t size, const std::string& name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset
  const GgufMetadata& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  std::vector<TensorDesc> tensor_descs() const;
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return data_ + data_offset_ + t.offset; }
  const uint8_t* file_data() const { return data_; }
  size_t file_size() const { return size_; }
  const std::string& name() const { return name_; }

 private:
  MappedFile map_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  GgufMetadata metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

// Writes a GGUF file: metadata and tensor infos are declared first, then write() emits
// the header and calls `produce` once per tensor, in declaration order, to stream its bytes
// (exactly the tensor's size) so multi-GB models never sit in memory. Padding is zeros.
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3);
  void set(const std::string& key, GgufValue value);  // general.alignment is honoured
  void add_tensor(const std::string& name, GgmlType type, std::vector<uint64_t> ne);
  using Producer = std::function<void(size_t index, const TensorDesc& t, OutputFile& out)>;
  void write(const std::filesystem::path& path, const Producer& produce) const;

 private:
  uint32_t version_;
  GgufMetadata metadata_;
  std::vector<TensorDesc> tensors_;
};

}  // namespace lw
