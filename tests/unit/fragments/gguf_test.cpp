#include "fragments/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

#include "common/error.h"
#include "tests/support/test_support.h"
#include "tests/unit/fragments/gguf_test_util.h"

namespace lw {
namespace {

using test::sample_metadata;
using test::sample_tensors;
using test::TempDir;

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        const X& y = std::get<X>(b.value);
        if constexpr (std::is_same_v<X, GgufArray>) {
          if (x.elem_type != y.elem_type || x.items.size() != y.items.size()) return false;
          for (size_t i = 0; i < x.items.size(); ++i) {
            if (!same_value(x.items[i], y.items[i])) return false;
          }
          return true;
        } else {
          return x == y;
        }
      },
      a.value);
}

// Copies a parsed file into a writer: metadata in file order, tensors in file order.
void rewrite(const GgufFile& f, const std::filesystem::path& path) {
  GgufWriter w(f.version());
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const GgufTensorInfo& t : f.tensors()) w.add_tensor(t.name, t.type, t.ne);
  w.write(path, [&](size_t i, const TensorDesc&, OutputFile& out) {
    out.write(f.tensor_data(f.tensors()[i]), f.tensors()[i].size);
  });
}

class GgufRoundTrip : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(GgufRoundTrip, EveryValueTypeTensorsAndRewrite) {
  auto [version, alignment] = GetParam();
  TempDir dir;
  std::vector<uint8_t> bytes = test::write_sample(dir / "a.gguf", version, alignment);
  GgufFile f = GgufFile::open(dir / "a.gguf");
  const uint64_t align = alignment == 0 ? 32 : alignment;
  EXPECT_EQ(f.version(), version);
  EXPECT_EQ(f.alignment(), align);
  EXPECT_EQ(f.data_offset() % align, 0u);
  EXPECT_EQ(f.file_size(), bytes.size());

  GgufMetadata want = sample_metadata(alignment);
  ASSERT_EQ(f.metadata().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(f.metadata()[i].first, want[i].first);
    EXPECT_TRUE(same_value(f.metadata()[i].second, want[i].second)) << want[i].first;
  }

  std::vector<TensorDesc> descs = sample_tensors();
  ASSERT_EQ(f.tensors().size(), descs.size());
  uint64_t next = 0;  // offsets follow declaration order, each aligned
  for (size_t i = 0; i < descs.size(); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, descs[i].name);
    EXPECT_EQ(t.type, descs[i].type);
    EXPECT_EQ(t.ne, descs[i].ne);
    EXPECT_EQ(t.size, test::kSampleSizes[i]) << t.name;
    EXPECT_EQ(t.offset, next) << t.name;
    next = align_up(t.offset + t.size, align);
    std::vector<uint8_t> data = test::tensor_bytes(i, t.size);
    EXPECT_EQ(std::memcmp(f.tensor_data(t), data.data(), data.size()), 0) << t.name;
  }
  EXPECT_EQ(f.file_size(), f.data_offset() + next);  // zero padding after the last tensor too
  if (align > 1) {
    EXPECT_EQ(bytes.back(), 0);
  }

  rewrite(f, dir / "b.gguf");
  EXPECT_EQ(test::read_file_bytes(dir / "b.gguf"), bytes);
}

INSTANTIATE_TEST_SUITE_P(VersionsAndAlignments, GgufRoundTrip,
                         ::testing::Combine(::testing::Values(2u, 3u),
                                            ::testing::Values(0u, 64u, 1u)));

TEST(GgufTest, KnownOffsetsForDefaultAlignment) {
  TempDir dir;
  test::write_sample(dir / "a.gguf");
  GgufFile f = GgufFile::open(dir / "a.gguf");
  // Sizes 96, 12, 136, 144, 48, 420 placed on 32-byte boundaries, by hand.
  std::vector<uint64_t> offsets;
  for (const GgufTensorInfo& t : f.tensors()) offsets.push_back(t.offset);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 96, 128, 288, 448, 512}));
  EXPECT_EQ(f.file_size(), f.data_offset() + 960);
  // Header fields at their fixed positions.
  const uint8_t* p = f.file_data();
  EXPECT_EQ(std::memcmp(p, "GGUF", 4), 0);
  uint64_t n_tensors = 0, n_kv = 0;
  std::memcpy(&n_tensors, p + 8, 8);
  std::memcpy(&n_kv, p + 16, 8);
  EXPECT_EQ(n_tensors, 6u);
  EXPECT_EQ(n_kv, sample_metadata(0).size());
}

TEST(GgufTest, ParseOfCallerBytesMatchesOpenAndLookups) {
  TempDir dir;
  std::vector<uint8_t> bytes = test::write_sample(dir / "a.gguf");
  GgufFile f = GgufFile::parse(bytes.data(), bytes.size(), "mem.gguf");
  EXPECT_EQ(f.name(), "mem.gguf");
  EXPECT_EQ(f.file_data(), bytes.data());
  EXPECT_EQ(f.data_offset(), GgufFile::open(dir / "a.gguf").data_offset());
  ASSERT_NE(f.find("test.u32"), nullptr);
  uint64_t u = 0;
  EXPECT_TRUE(f.find("test.u32")->get_u64(&u));
  EXPECT_EQ(u, 4000000000u);
  EXPECT_EQ(f.find("test.missing"), nullptr);
  ASSERT_NE(f.find_tensor("blk.0.c"), nullptr);
  EXPECT_EQ(f.find_tensor("blk.0.c")->type, GgmlType::Q8_0);
  EXPECT_EQ(f.find_tensor("blk.0.z"), nullptr);
  std::vector<TensorDesc> descs = f.tensor_descs();
  ASSERT_EQ(descs.size(), 6u);
  EXPECT_EQ(descs[4].name, "blk.0.e");
  EXPECT_EQ(descs[4].n_elements(), 24u);
}

TEST(GgufTest, EmptyFileAndNoTensors) {
  TempDir dir;
  GgufWriter w(3);
  w.write(dir / "empty.gguf", [](size_t, const TensorDesc&, OutputFile&) { FAIL(); });
  GgufFile f = GgufFile::open(dir / "empty.gguf");
  EXPECT_EQ(f.file_size(), 32u);  // 24-byte header padded to 32
  EXPECT_EQ(f.data_offset(), 32u);
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_TRUE(f.tensors().empty());

  OutputFile(dir / "zero.gguf").close();
  try {
    GgufFile::open(dir / "zero.gguf");
    FAIL() << "a zero-byte file parsed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kGgufTruncated);
    EXPECT_NE(e.message().find("zero.gguf"), std::string::npos) << e.message();
  }
  try {
    GgufFile::open(dir / "missing.gguf");
    FAIL() << "a missing file opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoOpen);
  }
}

TEST(GgufTest, ValueAccessors) {
  using T = GgufValueType;
  uint64_t u = 0;
  int64_t i = 0;
  double d = 0;
  EXPECT_TRUE(GgufValue::u32(7).is_integer());
  EXPECT_TRUE(GgufValue::u32(7).get_i64(&i));
  EXPECT_EQ(i, 7);
  EXPECT_TRUE(GgufValue::i32(5).get_u64(&u));
  EXPECT_EQ(u, 5u);
  EXPECT_FALSE(GgufValue::i32(-5).get_u64(&u));
  EXPECT_TRUE(GgufValue::i32(-5).get_i64(&i));
  EXPECT_EQ(i, -5);
  EXPECT_FALSE(GgufValue::u64(UINT64_MAX).get_i64(&i));
  EXPECT_TRUE(GgufValue::u64(UINT64_MAX).get_u64(&u));
  EXPECT_EQ(u, UINT64_MAX);
  EXPECT_TRUE(GgufValue::i32(-5).get_f64(&d));
  EXPECT_EQ(d, -5.0);
  EXPECT_TRUE(GgufValue::f32(0.5f).get_f64(&d));
  EXPECT_EQ(d, 0.5);
  EXPECT_FALSE(GgufValue::f32(0.5f).is_integer());
  EXPECT_FALSE(GgufValue::f32(1.0f).get_u64(&u));
  EXPECT_FALSE(GgufValue::boolean(true).is_integer());
  EXPECT_FALSE(GgufValue::boolean(true).get_u64(&u));
  EXPECT_FALSE(GgufValue::string("3").get_i64(&i));
  EXPECT_FALSE(GgufValue::string("3").get_f64(&d));
  ASSERT_NE(GgufValue::string("abc").get_string(), nullptr);
  EXPECT_EQ(*GgufValue::string("abc").get_string(), "abc");
  EXPECT_EQ(GgufValue::u32(1).get_string(), nullptr);
  EXPECT_EQ(GgufValue::u32(1).get_array(), nullptr);
  GgufValue arr = GgufValue::array(T::STRING, {GgufValue::string("x")});
  ASSERT_NE(arr.get_array(), nullptr);
  EXPECT_EQ(arr.get_array()->elem_type, T::STRING);
  EXPECT_EQ(arr.get_array()->items.size(), 1u);
  EXPECT_EQ((GgufValue{T::UINT8, uint64_t{9}}.is_integer()), true);
  EXPECT_EQ((GgufValue{T::INT16, int64_t{-9}}.get_i64(&i)), true);
  EXPECT_EQ(i, -9);
}

TEST(GgufTest, ValueTypeNames) {
  EXPECT_EQ(gguf_value_type_name(GgufValueType::UINT8), "u8");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::INT16), "i16");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::FLOAT32), "f32");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::BOOL), "bool");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::STRING), "string");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::ARRAY), "array");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::FLOAT64), "f64");
  EXPECT_EQ(gguf_value_type_name(static_cast<GgufValueType>(13)), "unknown");
}

TEST(GgufWriterTest, SetReplacesInPlace) {
  TempDir dir;
  GgufWriter w(3);
  w.set("a", GgufValue::u32(1));
  w.set("b", GgufValue::string("x"));
  w.set("a", GgufValue::string("replaced"));
  w.write(dir / "a.gguf", test::produce_sample_bytes);
  GgufFile f = GgufFile::open(dir / "a.gguf");
  ASSERT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata()[0].first, "a");
  ASSERT_NE(f.metadata()[0].second.get_string(), nullptr);
  EXPECT_EQ(*f.metadata()[0].second.get_string(), "replaced");
  EXPECT_EQ(f.metadata()[1].first, "b");
}

ErrorCode writer_error(const std::function<void(GgufWriter&)>& build) {
  TempDir dir;
  try {
    GgufWriter w(3);
    build(w);
    w.write(dir / "a.gguf", test::produce_sample_bytes);
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;  // no error
}

TEST(GgufWriterTest, RejectsInvalidDeclarations) {
  EXPECT_EQ(writer_error([](GgufWriter& w) { w.add_tensor("t", GgmlType::Q4_0, {32}); }),
            ErrorCode::kGgufTensorType);
  EXPECT_EQ(writer_error([](GgufWriter& w) { w.add_tensor("t", GgmlType::Q8_0, {48}); }),
            ErrorCode::kGgufTensorShape);
  EXPECT_EQ(writer_error([](GgufWriter& w) { w.add_tensor("t", GgmlType::F32, {}); }),
            ErrorCode::kGgufTensorShape);
  EXPECT_EQ(writer_error([](GgufWriter& w) {
              w.add_tensor("t", GgmlType::F32, {1, 1, 1, 1, 1});
            }),
            ErrorCode::kGgufTensorShape);
  EXPECT_EQ(writer_error([](GgufWriter& w) {
              w.add_tensor("t", GgmlType::F32, {4, 0});
            }),
            ErrorCode::kGgufTensorShape);
  EXPECT_EQ(writer_error([](GgufWriter& w) {
              w.add_tensor("t", GgmlType::F32, {4});
              w.add_tensor("t", GgmlType::F16, {4});
            }),
            ErrorCode::kGgufDuplicate);
  EXPECT_EQ(writer_error([](GgufWriter& w) { w.set("general.alignment", GgufValue::u32(48)); }),
            ErrorCode::kGgufAlignment);
  EXPECT_EQ(writer_error([](GgufWriter& w) { w.set("general.alignment", GgufValue::u64(64)); }),
            ErrorCode::kGgufAlignment);
  EXPECT_EQ(writer_error([](GgufWriter& w) { w.add_tensor("t", GgmlType::F32, {4}); }),
            ErrorCode::kInternal);  // the valid case writes
}

TEST(GgufWriterDeathTest, ProducerWritingTheWrongSizeIsABug) {
  TempDir dir;
  GgufWriter w(3);
  w.add_tensor("t", GgmlType::F32, {4});
  EXPECT_DEATH(w.write(dir / "a.gguf",
                       [](size_t, const TensorDesc&, OutputFile& out) { out.write_zeros(12); }),
               "producer wrote 12 bytes for tensor t, expected 16");
}

}  // namespace
}  // namespace lw
