// GGUF reader against damaged files: a table of named corruptions of a valid written file,
// each with the exact error code it must raise, then truncation at every length and random
// bit flips, which must end in success or a clean lw::Error, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>

#include "common/error.h"
#include "fragments/gguf.h"
#include "tests/support/test_support.h"
#include "tests/unit/fragments/gguf_test_util.h"

namespace lw {
namespace {

using Bytes = std::vector<uint8_t>;

// Byte offsets of the fields of one metadata entry / tensor info.
struct KvAt {
  std::string key;
  size_t key_len = 0;  // u64 key length; the key bytes follow
  size_t type = 0;     // u32 value type
  size_t value = 0;    // first byte of the value
  size_t end = 0;      // one past the value
};
struct TensorAt {
  std::string name;
  size_t name_len = 0, n_dims = 0, ne = 0, type = 0, offset = 0;
};

// Where the fields of a valid file lie, found by an independent walk that trusts the bytes.
struct Layout {
  std::vector<KvAt> kvs;
  std::vector<TensorAt> tensors;
  size_t infos_end = 0;
  const KvAt& kv(const std::string& key) const {
    for (const KvAt& k : kvs) {
      if (k.key == key) return k;
    }
    throw std::runtime_error("no key " + key);
  }
  const TensorAt& tensor(const std::string& name) const {
    for (const TensorAt& t : tensors) {
      if (t.name == name) return t;
    }
    throw std::runtime_error("no tensor " + name);
  }
};

template <typename T>
T get(const Bytes& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}
template <typename T>
void put(Bytes& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}
std::string get_string(const Bytes& b, size_t off) {
  return std::string(reinterpret_cast<const char*>(b.data() + off + 8), get<uint64_t>(b, off));
}

size_t skip_value(const Bytes& b, uint32_t type, size_t pos) {
  static const size_t kFixed[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (type == 8) return pos + 8 + get<uint64_t>(b, pos);
  if (type != 9) return pos + kFixed[type];
  uint32_t elem = get<uint32_t>(b, pos);
  uint64_t count = get<uint64_t>(b, pos + 4);
  pos += 12;
  for (uint64_t i = 0; i < count; ++i) pos = skip_value(b, elem, pos);
  return pos;
}

Layout locate(const Bytes& b) {
  Layout l;
  uint64_t n_tensors = get<uint64_t>(b, 8), n_kv = get<uint64_t>(b, 16);
  size_t pos = 24;
  for (uint64_t i = 0; i < n_kv; ++i) {
    KvAt k;
    k.key_len = pos;
    k.key = get_string(b, pos);
    k.type = pos + 8 + k.key.size();
    k.value = k.type + 4;
    k.end = skip_value(b, get<uint32_t>(b, k.type), k.value);
    pos = k.end;
    l.kvs.push_back(k);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorAt t;
    t.name_len = pos;
    t.name = get_string(b, pos);
    t.n_dims = pos + 8 + t.name.size();
    t.ne = t.n_dims + 4;
    t.type = t.ne + 8 * get<uint32_t>(b, t.n_dims);
    t.offset = t.type + 4;
    pos = t.offset + 8;
    l.tensors.push_back(t);
  }
  l.infos_end = pos;
  return l;
}

// The base file: the shared sample with general.alignment = 32 written explicitly.
class GgufCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = test::write_sample(dir_ / "base.gguf", 3, 32);
    layout_ = locate(bytes_);
    ASSERT_EQ(layout_.tensors.size(), 6u);
    GgufFile f = GgufFile::parse(bytes_.data(), bytes_.size(), "base.gguf");
    data_offset_ = f.data_offset();
    data_end_ = data_offset_ + f.tensors().back().offset + f.tensors().back().size;
  }
  test::TempDir dir_;
  Bytes bytes_;
  Layout layout_;
  size_t data_offset_ = 0;
  size_t data_end_ = 0;  // one past the last tensor's bytes
};

struct Corruption {
  const char* name;
  std::function<void(Bytes&, const Layout&)> mutate;
  ErrorCode code;
  const char* in_message;  // a field name or value the message must contain
};

void splice(Bytes& b, size_t begin, size_t end, const Bytes& with) {
  b.erase(b.begin() + begin, b.begin() + end);
  b.insert(b.begin() + begin, with.begin(), with.end());
}

// 1000 arrays, each holding one array, the innermost an empty u8 array.
Bytes depth_bomb() {
  Bytes b;
  auto add = [&](uint32_t type, uint64_t count) {
    b.resize(b.size() + 12);
    put(b, b.size() - 12, type);
    put(b, b.size() - 8, count);
  };
  for (int i = 0; i < 1000; ++i) add(9, 1);
  add(0, 0);
  return b;
}

TEST_F(GgufCorruptionTest, NamedCorruptionsRaiseTheirCodes) {
  using E = ErrorCode;
  const Layout& L = layout_;
  const size_t data_offset = data_offset_;
  auto kv = [&](const char* key) { return L.kv(key); };
  auto tensor = [&](const char* name) { return L.tensor(name); };
  const std::vector<Corruption> table = {
      {"bad_magic", [](Bytes& b, const Layout&) { b[0] = 'X'; }, E::kGgufMagic, "magic"},
      {"version_1", [](Bytes& b, const Layout&) { put<uint32_t>(b, 4, 1); }, E::kGgufVersion,
       "version 1"},
      {"version_99", [](Bytes& b, const Layout&) { put<uint32_t>(b, 4, 99); }, E::kGgufVersion,
       "version 99"},
      {"big_endian", [](Bytes& b, const Layout&) { put<uint32_t>(b, 4, 0x03000000); },
       E::kGgufVersion, "big-endian"},
      {"truncated_in_header", [](Bytes& b, const Layout&) { b.resize(12); }, E::kGgufTruncated,
       "n_tensors"},
      {"truncated_in_key_string",
       [&](Bytes& b, const Layout&) { b.resize(kv("test.nested").key_len + 8 + 4); },
       E::kGgufTruncated, "metadata key 16"},
      {"truncated_in_array",
       [&](Bytes& b, const Layout&) { b.resize(kv("tokenizer.ggml.tokens").value + 12 + 50); },
       E::kGgufTruncated, "tokenizer.ggml.tokens"},
      {"truncated_in_tensor_infos",
       [&](Bytes& b, const Layout&) { b.resize(tensor("blk.0.c").ne + 3); }, E::kGgufTruncated,
       "tensor 2 (blk.0.c)"},
      {"truncated_in_data", [&](Bytes& b, const Layout&) { b.resize(data_offset + 10); },
       E::kGgufTensorOffset, "outside the file"},
      {"huge_n_kv", [](Bytes& b, const Layout&) { put<uint64_t>(b, 16, 1ull << 60); },
       E::kGgufCount, "n_kv"},
      {"huge_n_tensors", [](Bytes& b, const Layout&) { put<uint64_t>(b, 8, 1ull << 40); },
       E::kGgufCount, "n_tensors"},
      {"huge_key_length",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, kv("test.u8").key_len, 1ull << 62); },
       E::kGgufCount, "key length"},
      {"huge_string_length",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, kv("general.architecture").value, ~0ull); },
       E::kGgufCount, "string value length"},
      {"huge_array_count",
       [&](Bytes& b, const Layout&) {
         put<uint64_t>(b, kv("tokenizer.ggml.tokens").value + 4, 1ull << 61);
       },
       E::kGgufCount, "array count"},
      {"unknown_value_type",
       [&](Bytes& b, const Layout&) { put<uint32_t>(b, kv("test.u8").type, 13); },
       E::kGgufValueType, "value type 13"},
      {"unknown_array_element_type",
       [&](Bytes& b, const Layout&) { put<uint32_t>(b, kv("test.u32_array").value, 99); },
       E::kGgufValueType, "array element type 99"},
      {"nested_array_depth_bomb",
       [&](Bytes& b, const Layout&) {
         splice(b, kv("test.nested").value, kv("test.nested").end, depth_bomb());
       },
       E::kGgufValueType, "nested deeper than 8"},
      {"bool_not_0_or_1", [&](Bytes& b, const Layout&) { b[kv("test.bool").value] = 2; },
       E::kGgufValueType, "bool value 2"},
      {"duplicate_key", [&](Bytes& b, const Layout&) { b[kv("test.i8").key_len + 8 + 5] = 'u'; },
       E::kGgufDuplicate, "(test.u8): key also appears as metadata key 2"},
      {"alignment_not_power_of_two",
       [&](Bytes& b, const Layout&) { put<uint32_t>(b, kv("general.alignment").value, 48); },
       E::kGgufAlignment, "48 is not a power of two"},
      {"alignment_zero",
       [&](Bytes& b, const Layout&) { put<uint32_t>(b, kv("general.alignment").value, 0); },
       E::kGgufAlignment, "0 is not a power of two"},
      {"alignment_wrong_type",
       [&](Bytes& b, const Layout&) { put<uint32_t>(b, kv("general.alignment").type, 5); },
       E::kGgufAlignment, "type is i32"},
      {"n_dims_0", [&](Bytes& b, const Layout&) { put<uint32_t>(b, tensor("blk.0.a").n_dims, 0); },
       E::kGgufTensorShape, "n_dims 0"},
      {"n_dims_5", [&](Bytes& b, const Layout&) { put<uint32_t>(b, tensor("blk.0.a").n_dims, 5); },
       E::kGgufTensorShape, "n_dims 5"},
      {"ne_0", [&](Bytes& b, const Layout&) { put<uint64_t>(b, tensor("blk.0.a").ne + 8, 0); },
       E::kGgufTensorShape, "ne[1] is 0"},
      {"ne_product_overflow",
       [&](Bytes& b, const Layout&) {
         put<uint64_t>(b, tensor("blk.0.a").ne, 1ull << 32);
         put<uint64_t>(b, tensor("blk.0.a").ne + 8, 1ull << 32);
       },
       E::kGgufTensorShape, "element count of shape [4294967296, 4294967296] overflows"},
      {"byte_size_overflow",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, tensor("blk.0.b").ne, 1ull << 63); },
       E::kGgufTensorShape, "byte size"},
      {"unknown_tensor_type",
       [&](Bytes& b, const Layout&) { put<uint32_t>(b, tensor("blk.0.a").type, 1000); },
       E::kGgufTensorType, "type id 1000"},
      {"unsupported_type_q4_0",
       [&](Bytes& b, const Layout&) { put<uint32_t>(b, tensor("blk.0.c").type, 2); },
       E::kGgufTensorType, "q4_0"},
      {"row_not_multiple_of_block",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, tensor("blk.0.c").ne, 48); },
       E::kGgufTensorShape, "ne[0] 48 is not a multiple of the q8_0 block size 32"},
      {"offset_past_end",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, tensor("blk.0.f").offset, 1 << 20); },
       E::kGgufTensorOffset, "tensor 5 (blk.0.f): offset 1048576 size 420"},
      {"offset_overflow",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, tensor("blk.0.f").offset, ~0ull << 5); },
       E::kGgufTensorOffset, "outside the file"},
      {"misaligned_offset",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, tensor("blk.0.b").offset, 97); },
       E::kGgufTensorOffset, "tensor 1 (blk.0.b): offset 97 is not a multiple of the alignment 32"},
      {"overlapping_tensors",
       [&](Bytes& b, const Layout&) { put<uint64_t>(b, tensor("blk.0.b").offset, 64); },
       E::kGgufTensorOverlap, "overlaps tensor 0 (blk.0.a)"},
      {"duplicate_tensor_name",
       [&](Bytes& b, const Layout&) { b[tensor("blk.0.b").name_len + 8 + 6] = 'a'; },
       E::kGgufDuplicate, "tensor 1 (blk.0.a): name also used by tensor 0"},
  };
  ASSERT_GE(table.size(), 14u);
  for (const Corruption& c : table) {
    Bytes b = bytes_;
    c.mutate(b, L);
    try {
      GgufFile::parse(b.data(), b.size(), "bad.gguf");
      ADD_FAILURE() << c.name << ": parsed without error";
    } catch (const Error& e) {
      EXPECT_EQ(e.id(), error_info(c.code).id) << c.name << ": " << e.what();
      EXPECT_EQ(e.message().rfind("bad.gguf: ", 0), 0u) << c.name << ": " << e.what();
      EXPECT_NE(e.message().find(c.in_message), std::string::npos) << c.name << ": " << e.what();
    }
  }
}

TEST_F(GgufCorruptionTest, EveryTruncationFailsCleanly) {
  for (size_t len = 0; len < bytes_.size(); ++len) {
    Bytes b(bytes_.begin(), bytes_.begin() + len);  // exact size, so a sanitizer sees overreads
    try {
      GgufFile f = GgufFile::parse(b.data(), b.size(), "cut.gguf");
      // Only the zero padding after the last tensor may be cut without harm.
      EXPECT_GE(len, data_end_) << "truncated to " << len << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_LT(len, data_end_) << e.what();
      EXPECT_TRUE(e.code() == ErrorCode::kGgufTruncated || e.code() == ErrorCode::kGgufCount ||
                  e.code() == ErrorCode::kGgufTensorOffset)
          << "truncated to " << len << ": " << e.what();
    }
  }
}

TEST_F(GgufCorruptionTest, RandomBitFlipsInTheHeaderFailCleanly) {
  std::mt19937 rng(1234);
  int errors = 0, parsed = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    Bytes b = bytes_;
    size_t bit = rng() % (data_offset_ * 8);
    b[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    try {
      GgufFile f = GgufFile::parse(b.data(), b.size(), "flip.gguf");
      for (const GgufTensorInfo& t : f.tensors()) {  // whatever parsed lies inside the file
        ASSERT_LE(f.data_offset() + t.offset + t.size, b.size());
      }
      ++parsed;
    } catch (const Error&) {
      ++errors;
    }
  }
  // Flips in the magic, version and type fields must be caught; flips inside string bytes
  // (names, tokens) still parse.
  EXPECT_GT(errors, 200);
  EXPECT_GT(parsed, 100);
}

}  // namespace
}  // namespace lw
