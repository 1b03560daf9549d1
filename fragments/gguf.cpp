#include "fragments/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "common/error.h"

namespace lw {

static_assert(std::endian::native == std::endian::little,
              "GGUF fields are read and written by memcpy of little-endian values");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 8;  // an array of arrays is depth 2
constexpr uint32_t kMaxDims = 4;
constexpr uint32_t kMaxValueType = static_cast<uint32_t>(GgufValueType::FLOAT64);
// Smallest possible encodings, used to bound counts by the bytes that remain.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // empty key, type, u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset

uint64_t min_value_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::STRING:  // u64 length
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
      return 8;
    case GgufValueType::ARRAY:  // u32 elem_type | u64 count
      return 12;
  }
  return 1;
}

bool is_unsigned_type(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}
bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}

std::string shape_string(const std::vector<uint64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Validates a tensor's type and shape and returns its size in bytes. Throws LW-GGUF-006/007
// prefixed with `where` ("model.gguf: tensor 3 (blk.0.attn_q.weight)").
uint64_t tensor_size(const std::string& where, uint32_t type_id, const std::vector<uint64_t>& ne) {
  auto fail = [&](ErrorCode code, const std::string& what) {
    throw Error(code, where + ": " + what);
  };
  if (ne.empty() || ne.size() > kMaxDims) {
    fail(ErrorCode::kGgufTensorShape, "n_dims " + std::to_string(ne.size()) + " is not 1..4");
  }
  uint64_t n = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] == 0) fail(ErrorCode::kGgufTensorShape, "ne[" + std::to_string(d) + "] is 0");
    if (!checked_mul(n, ne[d], &n)) {
      fail(ErrorCode::kGgufTensorShape,
           "element count of shape " + shape_string(ne) + " overflows");
    }
  }
  const TypeTraits* traits = type_traits(type_id);
  if (traits == nullptr) {
    fail(ErrorCode::kGgufTensorType, "type id " + std::to_string(type_id) + " is not a GGML type");
  }
  if (!traits->supported) {
    fail(ErrorCode::kGgufTensorType, "type " + std::string(traits->name) + " (id " +
                                         std::to_string(type_id) + ") is not supported");
  }
  if (ne[0] % traits->block_size != 0) {
    fail(ErrorCode::kGgufTensorShape, "row length ne[0] " + std::to_string(ne[0]) +
                                          " is not a multiple of the " + std::string(traits->name) +
                                          " block size " + std::to_string(traits->block_size));
  }
  uint64_t row = 0, size = 0;
  if (!row_size(traits->type, ne[0], &row) || !checked_mul(row, n / ne[0], &size)) {
    fail(ErrorCode::kGgufTensorShape, "byte size of shape " + shape_string(ne) + " overflows");
  }
  return size;
}

// Bounds-checked little-endian cursor over untrusted bytes. `context_` names the key or
// tensor being read so every error names the file, the item and the field.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  uint64_t pos() const { return pos_; }
  void set_context(std::string context) { context_ = std::move(context); }
  std::string where() const { return name_ + ": " + context_; }
  [[noreturn]] void fail(ErrorCode code, const std::string& what) const {
    throw Error(code, where() + ": " + what);
  }

  template <typename T>
  T read(const char* field) {
    T v;
    if (sizeof(T) > size_ - pos_) {
      fail(ErrorCode::kGgufTruncated, std::string("file ends at byte ") + std::to_string(size_) +
                                          " inside " + field + " (" + std::to_string(sizeof(T)) +
                                          " bytes at offset " + std::to_string(pos_) + ")");
    }
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // Checks that `count` items of at least `item_size` bytes each can follow. A count that
  // would not fit even in the whole file is LW-GGUF-004; one that fits the file but not the
  // bytes left after the cursor means the file was cut short, LW-GGUF-003.
  void need(uint64_t count, uint64_t item_size, std::string_view field) const {
    uint64_t bytes = 0;
    if (!checked_mul(count, item_size, &bytes) || bytes > size_) {
      fail(ErrorCode::kGgufCount, std::string(field) + " " + std::to_string(count) +
                                      " is larger than the file of " + std::to_string(size_) +
                                      " bytes allows");
    }
    if (bytes > size_ - pos_) {
      fail(ErrorCode::kGgufTruncated, "file ends at byte " + std::to_string(size_) + ": " +
                                          std::string(field) + " " + std::to_string(count) +
                                          " needs " + std::to_string(bytes) +
                                          " bytes from offset " + std::to_string(pos_));
    }
  }

  std::string read_string(const char* field) {
    uint64_t len = read<uint64_t>(field);
    need(len, 1, std::string(field) + " length");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  GgufValueType read_type(const char* field) {
    uint32_t t = read<uint32_t>(field);
    if (t > kMaxValueType) {
      fail(ErrorCode::kGgufValueType,
           std::string(field) + " " + std::to_string(t) + " is not a GGUF value type");
    }
    return static_cast<GgufValueType>(t);
  }

  GgufValue read_value(GgufValueType type, int depth) {
    using V = GgufValueType;
    switch (type) {
      case V::UINT8:
        return scalar<uint64_t, uint8_t>(type, "u8 value");
      case V::INT8:
        return scalar<int64_t, int8_t>(type, "i8 value");
      case V::UINT16:
        return scalar<uint64_t, uint16_t>(type, "u16 value");
      case V::INT16:
        return scalar<int64_t, int16_t>(type, "i16 value");
      case V::UINT32:
        return scalar<uint64_t, uint32_t>(type, "u32 value");
      case V::INT32:
        return scalar<int64_t, int32_t>(type, "i32 value");
      case V::UINT64:
        return scalar<uint64_t, uint64_t>(type, "u64 value");
      case V::INT64:
        return scalar<int64_t, int64_t>(type, "i64 value");
      case V::FLOAT32:
        return scalar<double, float>(type, "f32 value");
      case V::FLOAT64:
        return scalar<double, double>(type, "f64 value");
      case V::BOOL: {
        uint8_t b = read<uint8_t>("bool value");
        if (b > 1)
          fail(ErrorCode::kGgufValueType, "bool value " + std::to_string(b) + " is not 0 or 1");
        return {type, b == 1};
      }
      case V::STRING:
        return {type, read_string("string value")};
      case V::ARRAY:
        return {type, read_array(depth + 1)};
    }
    fail(ErrorCode::kGgufValueType, "value type " + std::to_string(static_cast<uint32_t>(type)));
  }

 private:
  // One fixed-width field of type T, held widened as Stored.
  template <typename Stored, typename T>
  GgufValue scalar(GgufValueType type, const char* field) {
    return {type, static_cast<Stored>(read<T>(field))};
  }

  GgufArray read_array(int depth) {
    if (depth > kMaxArrayDepth) {
      fail(ErrorCode::kGgufValueType,
           "arrays nested deeper than " + std::to_string(kMaxArrayDepth));
    }
    GgufArray a;
    a.elem_type = read_type("array element type");
    uint64_t count = read<uint64_t>("array count");
    need(count, min_value_size(a.elem_type), "array count");
    a.items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) a.items.push_back(read_value(a.elem_type, depth));
    return a;
  }

  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& name_;
  std::string context_ = "header";
};

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                                "i32", "f32", "bool", "string", "array",
                                                "u64", "i64", "f64"};
  uint32_t t = static_cast<uint32_t>(type);
  return t <= kMaxValueType ? kNames[t] : "unknown";
}

// ---- GgufValue ----

GgufValue GgufValue::u32(uint32_t v) { return {GgufValueType::UINT32, uint64_t{v}}; }
GgufValue GgufValue::i32(int32_t v) { return {GgufValueType::INT32, int64_t{v}}; }
GgufValue GgufValue::u64(uint64_t v) { return {GgufValueType::UINT64, v}; }
GgufValue GgufValue::f32(float v) { return {GgufValueType::FLOAT32, double{v}}; }
GgufValue GgufValue::boolean(bool v) { return {GgufValueType::BOOL, v}; }
GgufValue GgufValue::string(std::string v) { return {GgufValueType::STRING, std::move(v)}; }
GgufValue GgufValue::array(GgufValueType elem_type, std::vector<GgufValue> items) {
  return {GgufValueType::ARRAY, GgufArray{elem_type, std::move(items)}};
}

bool GgufValue::is_integer() const { return is_unsigned_type(type) || is_signed_type(type); }

bool GgufValue::get_u64(uint64_t* out) const {
  if (const uint64_t* u = std::get_if<uint64_t>(&value); u && is_unsigned_type(type)) {
    *out = *u;
    return true;
  }
  if (const int64_t* i = std::get_if<int64_t>(&value); i && is_signed_type(type) && *i >= 0) {
    *out = static_cast<uint64_t>(*i);
    return true;
  }
  return false;
}

bool GgufValue::get_i64(int64_t* out) const {
  if (const int64_t* i = std::get_if<int64_t>(&value); i && is_signed_type(type)) {
    *out = *i;
    return true;
  }
  const uint64_t* u = std::get_if<uint64_t>(&value);
  if (u && is_unsigned_type(type) && *u <= uint64_t{std::numeric_limits<int64_t>::max()}) {
    *out = static_cast<int64_t>(*u);
    return true;
  }
  return false;
}

bool GgufValue::get_f64(double* out) const {
  const double* d = std::get_if<double>(&value);
  if (d && (type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64)) {
    *out = *d;
    return true;
  }
  if (const uint64_t* u = std::get_if<uint64_t>(&value); u && is_unsigned_type(type)) {
    *out = static_cast<double>(*u);
    return true;
  }
  if (const int64_t* i = std::get_if<int64_t>(&value); i && is_signed_type(type)) {
    *out = static_cast<double>(*i);
    return true;
  }
  return false;
}

const std::string* GgufValue::get_string() const {
  return type == GgufValueType::STRING ? std::get_if<std::string>(&value) : nullptr;
}

const GgufArray* GgufValue::get_array() const {
  return type == GgufValueType::ARRAY ? std::get_if<GgufArray>(&value) : nullptr;
}

uint64_t TensorDesc::n_elements() const {
  return std::accumulate(ne.begin(), ne.end(), uint64_t{1}, std::multiplies<uint64_t>());
}

// ---- GgufFile ----

GgufFile GgufFile::open(const std::filesystem::path& path) {
  MappedFile map(path);
  GgufFile file = parse(map.data(), map.size(), path.string());
  file.map_ = std::move(map);  // moving a mapping keeps its address, so data_ stays valid
  return file;
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  GgufFile f;
  f.data_ = data;
  f.size_ = size;
  f.name_ = name;
  Cursor in(data, size, f.name_);

  uint32_t magic = in.read<uint32_t>("magic");
  if (magic != kMagic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    in.fail(ErrorCode::kGgufMagic,
            std::string("magic is ") + hex + ", expected 0x46554747 (\"GGUF\")");
  }
  f.version_ = in.read<uint32_t>("version");
  if (f.version_ != 2 && f.version_ != 3) {
    uint32_t swapped = __builtin_bswap32(f.version_);
    in.fail(ErrorCode::kGgufVersion,
            "version " + std::to_string(f.version_) +
                (swapped == 2 || swapped == 3 ? " (a big-endian file) is not supported"
                                              : " is not supported (only 2 and 3)"));
  }
  uint64_t n_tensors = in.read<uint64_t>("n_tensors");
  uint64_t n_kv = in.read<uint64_t>("n_kv");
  in.need(n_kv, kMinKvBytes, "n_kv");
  in.need(n_tensors, kMinTensorInfoBytes, "n_tensors");

  std::unordered_map<std::string, uint64_t> seen;  // key or tensor name -> index
  f.metadata_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    in.set_context("metadata key " + std::to_string(i));
    std::string key = in.read_string("key");
    in.set_context("metadata key " + std::to_string(i) + " (" + key + ")");
    GgufValueType type = in.read_type("value type");
    GgufValue value = in.read_value(type, 0);
    if (auto [it, fresh] = seen.emplace(key, i); !fresh) {
      in.fail(ErrorCode::kGgufDuplicate,
              "key also appears as metadata key " + std::to_string(it->second));
    }
    f.metadata_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* a = f.find("general.alignment")) {
    in.set_context("general.alignment");
    uint64_t align = 0;
    if (a->type != GgufValueType::UINT32 || !a->get_u64(&align)) {
      in.fail(ErrorCode::kGgufAlignment,
              "type is " + std::string(gguf_value_type_name(a->type)) + ", expected u32");
    }
    if (!std::has_single_bit(align)) {
      in.fail(ErrorCode::kGgufAlignment, std::to_string(align) + " is not a power of two");
    }
    f.alignment_ = align;
  } else {
    f.alignment_ = kDefaultAlignment;
  }

  seen.clear();
  f.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    in.set_context("tensor " + std::to_string(i));
    GgufTensorInfo t;
    t.name = in.read_string("name");
    in.set_context("tensor " + std::to_string(i) + " (" + t.name + ")");
    uint32_t n_dims = in.read<uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) {
      in.fail(ErrorCode::kGgufTensorShape, "n_dims " + std::to_string(n_dims) + " is not 1..4");
    }
    for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(in.read<uint64_t>("ne"));
    uint32_t type_id = in.read<uint32_t>("type");
    t.size = tensor_size(in.where(), type_id, t.ne);
    t.type = static_cast<GgmlType>(type_id);
    t.offset = in.read<uint64_t>("offset");
    if (t.offset % f.alignment_ != 0) {
      in.fail(ErrorCode::kGgufTensorOffset, "offset " + std::to_string(t.offset) +
                                                " is not a multiple of the alignment " +
                                                std::to_string(f.alignment_));
    }
    if (auto [it, fresh] = seen.emplace(t.name, i); !fresh) {
      in.fail(ErrorCode::kGgufDuplicate, "name also used by tensor " + std::to_string(it->second));
    }
    f.tensors_.push_back(std::move(t));
  }

  uint64_t padded = 0;
  if (!checked_add(in.pos(), f.alignment_ - 1, &padded)) {
    in.fail(ErrorCode::kGgufTensorOffset, "data offset overflows");
  }
  f.data_offset_ = padded / f.alignment_ * f.alignment_;

  // Every tensor lies inside the file; sorted by offset, none reaches into the next.
  std::vector<size_t> order(f.tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  for (size_t i : order) {
    const GgufTensorInfo& t = f.tensors_[i];
    uint64_t begin = 0, end = 0;
    bool fits = checked_add(f.data_offset_, t.offset, &begin) && checked_add(begin, t.size, &end);
    if (!fits || end > size) {
      in.set_context("tensor " + std::to_string(i) + " (" + t.name + ")");
      in.fail(ErrorCode::kGgufTensorOffset,
              "offset " + std::to_string(t.offset) + " size " + std::to_string(t.size) +
                  (fits ? ": data [" + std::to_string(begin) + ", " + std::to_string(end) + ")"
                        : ": data end overflows") +
                  " lies outside the file of " + std::to_string(size) + " bytes");
    }
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f.tensors_[a].offset < f.tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& prev = f.tensors_[order[k - 1]];
    const GgufTensorInfo& next = f.tensors_[order[k]];
    if (prev.offset + prev.size > next.offset) {  // no overflow: both ends checked above
      in.set_context("tensor " + std::to_string(order[k]) + " (" + next.name + ")");
      in.fail(ErrorCode::kGgufTensorOverlap,
              "data at offset " + std::to_string(next.offset) + " overlaps tensor " +
                  std::to_string(order[k - 1]) + " (" + prev.name + ") at offset " +
                  std::to_string(prev.offset) + " size " + std::to_string(prev.size));
    }
  }
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& [k, v] : metadata_) {
    if (k == key) return &v;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const GgufTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<TensorDesc> GgufFile::tensor_descs() const {
  return std::vector<TensorDesc>(tensors_.begin(), tensors_.end());
}

// ---- GgufWriter ----

namespace {

// Appends little-endian fields to the header image.
class HeaderBuffer {
 public:
  template <typename T>
  void put(T v) {
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.append(s);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// A value whose variant does not match its declared type is a caller bug, not bad input.
template <typename Stored, typename T>
void put_integer(HeaderBuffer& out, const GgufValue& v) {
  const Stored* p = std::get_if<Stored>(&v.value);
  LW_CHECK(
      p != nullptr && *p >= std::numeric_limits<T>::min() && *p <= std::numeric_limits<T>::max(),
      "gguf " + std::string(gguf_value_type_name(v.type)) +
          " value holds the wrong kind or is out of range");
  out.put(static_cast<T>(*p));
}

template <typename T>
const T& get_checked(const GgufValue& v) {
  const T* p = std::get_if<T>(&v.value);
  LW_CHECK(p != nullptr,
           "gguf " + std::string(gguf_value_type_name(v.type)) + " value holds the wrong kind");
  return *p;
}

void put_value(HeaderBuffer& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
      put_integer<uint64_t, uint8_t>(out, v);
      return;
    case GgufValueType::INT8:
      put_integer<int64_t, int8_t>(out, v);
      return;
    case GgufValueType::UINT16:
      put_integer<uint64_t, uint16_t>(out, v);
      return;
    case GgufValueType::INT16:
      put_integer<int64_t, int16_t>(out, v);
      return;
    case GgufValueType::UINT32:
      put_integer<uint64_t, uint32_t>(out, v);
      return;
    case GgufValueType::INT32:
      put_integer<int64_t, int32_t>(out, v);
      return;
    case GgufValueType::UINT64:
      put_integer<uint64_t, uint64_t>(out, v);
      return;
    case GgufValueType::INT64:
      put_integer<int64_t, int64_t>(out, v);
      return;
    case GgufValueType::FLOAT32:
      out.put(static_cast<float>(get_checked<double>(v)));
      return;
    case GgufValueType::FLOAT64:
      out.put(get_checked<double>(v));
      return;
    case GgufValueType::BOOL:
      out.put<uint8_t>(get_checked<bool>(v) ? 1 : 0);
      return;
    case GgufValueType::STRING:
      out.put_string(get_checked<std::string>(v));
      return;
    case GgufValueType::ARRAY: {
      const GgufArray& a = get_checked<GgufArray>(v);
      out.put<uint32_t>(static_cast<uint32_t>(a.elem_type));
      out.put<uint64_t>(a.items.size());
      for (const GgufValue& item : a.items) {
        LW_CHECK(item.type == a.elem_type,
                 "gguf array of " + std::string(gguf_value_type_name(a.elem_type)) + " holds a " +
                     std::string(gguf_value_type_name(item.type)));
        put_value(out, item);
      }
      return;
    }
  }
  LW_CHECK(false, "gguf value type " + std::to_string(static_cast<uint32_t>(v.type)));
}

}  // namespace

GgufWriter::GgufWriter(uint32_t version) : version_(version) {
  LW_CHECK(version == 2 || version == 3, "gguf writer version " + std::to_string(version));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<uint64_t> ne) {
  std::string where = "gguf writer: tensor " + std::to_string(tensors_.size()) + " (" + name + ")";
  tensor_size(where, static_cast<uint32_t>(type), ne);  // throws on a bad type or shape
  for (const TensorDesc& t : tensors_) {
    if (t.name == name) throw Error(ErrorCode::kGgufDuplicate, where + ": name used twice");
  }
  tensors_.push_back(TensorDesc{name, type, std::move(ne)});
}

void GgufWriter::write(const std::filesystem::path& path, const Producer& produce) const {
  uint64_t alignment = kDefaultAlignment;
  for (const auto& [k, v] : metadata_) {
    if (k != "general.alignment") continue;
    if (v.type != GgufValueType::UINT32 || !v.get_u64(&alignment) ||
        !std::has_single_bit(alignment)) {
      throw Error(ErrorCode::kGgufAlignment,
                  path.string() + ": general.alignment must be a u32 power of two");
    }
  }

  HeaderBuffer header;
  header.put<uint32_t>(kMagic);
  header.put<uint32_t>(version_);
  header.put<uint64_t>(tensors_.size());
  header.put<uint64_t>(metadata_.size());
  for (const auto& [k, v] : metadata_) {
    header.put_string(k);
    header.put<uint32_t>(static_cast<uint32_t>(v.type));
    put_value(header, v);
  }
  // Offsets in declaration order, each aligned; the sizes were validated by add_tensor.
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const TensorDesc& t : tensors_) {
    sizes.push_back(tensor_size(t.name, static_cast<uint32_t>(t.type), t.ne));
    header.put_string(t.name);
    header.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t n : t.ne) header.put<uint64_t>(n);
    header.put<uint32_t>(static_cast<uint32_t>(t.type));
    header.put<uint64_t>(offset);
    offset = align_up(offset + sizes.back(), alignment);
  }

  OutputFile out(path);
  out.write(header.bytes().data(), header.bytes().size());
  out.write_zeros(align_up(out.offset(), alignment) - out.offset());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    uint64_t begin = out.offset();
    produce(i, tensors_[i], out);
    uint64_t written = out.offset() - begin;
    LW_CHECK(written == sizes[i], path.string() + ": producer wrote " + std::to_string(written) +
                                      " bytes for tensor " + tensors_[i].name + ", expected " +
                                      std::to_string(sizes[i]));
    out.write_zeros(align_up(out.offset(), alignment) - out.offset());
  }
  out.close();
}

}  // namespace lw
