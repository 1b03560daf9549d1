#include "fragments/store.h"

#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

#include "common/error.h"
#include "fragments/gguf.h"
#include "tests/unit/fragments/store_test_util.h"

namespace lw {
namespace {

using test::has_problem;
using test::make_store;
using test::read_bytes;
using test::TempDir;

// ---- round trips: synth -> split -> verify -> join -> byte compare ----

struct RoundTrip {
  std::string preset;
  int layers;
  std::string quant;
  uint32_t gguf_version;
};

class StoreRoundTripTest : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(StoreRoundTripTest, SplitVerifyJoinIsByteExact) {
  const RoundTrip& p = GetParam();
  TempDir tmp;
  auto f = make_store(tmp, p.preset, p.layers, p.quant, p.gguf_version);

  Manifest m = manifest_load(f.store);
  EXPECT_EQ(m.params.n_layers, static_cast<uint32_t>(p.layers));
  EXPECT_EQ(m.gguf_version, p.gguf_version);
  ASSERT_EQ(m.fragments.size(), static_cast<size_t>(p.layers) + 3);
  EXPECT_EQ(m.fragments.front().file, "gguf_header.lwf");
  EXPECT_EQ(m.fragments[1].file, "embedding.lwf");
  EXPECT_EQ(m.fragments[2].file, "blk.0.lwf");
  EXPECT_EQ(m.fragments.back().file, "output.lwf");

  // Every tensor's bytes in its fragment equal the GGUF's, at an aligned offset.
  GgufFile g = GgufFile::open(f.gguf);
  size_t seen = 0;
  for (const ManifestFragment& frag : m.fragments) {
    std::vector<uint8_t> bytes = read_bytes(f.store / frag.file);
    ASSERT_EQ(bytes.size(), frag.size) << frag.file;
    EXPECT_EQ(xxh3_128(bytes.data(), bytes.size()), frag.xxh3) << frag.file;
    for (const ManifestTensor& t : frag.tensors) {
      ++seen;
      const GgufTensorInfo* info = g.find_tensor(t.name);
      ASSERT_NE(info, nullptr) << t.name;
      EXPECT_EQ(t.offset % kFragmentAlignment, 0u) << t.name;
      EXPECT_EQ(t.gguf_offset, info->offset);
      ASSERT_EQ(t.size, info->size);
      EXPECT_EQ(std::memcmp(bytes.data() + t.offset, g.tensor_data(*info), t.size), 0) << t.name;
      if (frag.role == FragmentRole::Layer) {
        EXPECT_EQ(t.name.rfind("blk." + std::to_string(frag.layer) + ".", 0), 0u) << t.name;
      }
    }
  }
  EXPECT_EQ(seen, g.tensors().size());

  for (bool quick : {false, true}) {
    for (unsigned jobs : {1u, 3u}) {
      VerifyReport r = test::verify_all(f.store, quick, jobs);
      EXPECT_TRUE(r.ok()) << test::describe(r);
      EXPECT_EQ(r.files_checked, m.fragments.size());
      if (!quick) {
        uint64_t total = 0;
        for (const ManifestFragment& frag : m.fragments) total += frag.size;
        EXPECT_EQ(r.bytes_checked, total);
      }
    }
  }

  std::filesystem::path joined = tmp / "joined.gguf";
  store_join(f.store, joined, nullptr);
  EXPECT_EQ(read_bytes(joined), read_bytes(f.gguf));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()),
                          std::filesystem::directory_iterator()),
            3)
      << "split or join left temporary files behind";
}

std::vector<RoundTrip> round_trips() {
  std::vector<RoundTrip> out;
  for (int layers : {1, 3, 4}) {
    for (const char* quant : {"q4_k_m", "q8_0", "f16", "f32"}) {
      out.push_back({"tiny", layers, quant, 3});
    }
  }
  out.push_back({"tiny-magistral", 1, "q4_k_m", 3});
  out.push_back({"tiny-magistral", 3, "f16", 3});
  out.push_back({"tiny", 3, "q4_k_m", 2});
  out.push_back({"tiny-magistral", 1, "q8_0", 2});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Presets, StoreRoundTripTest, ::testing::ValuesIn(round_trips()),
                         [](const auto& info) {
                           std::string name = info.param.preset + "_" +
                                              std::to_string(info.param.layers) + "l_" +
                                              info.param.quant + "_v" +
                                              std::to_string(info.param.gguf_version);
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(StoreTest, SplitIsDeterministic) {
  TempDir tmp;
  auto f = make_store(tmp, "tiny", 2, "q4_k_m");
  store_split(f.gguf, tmp / "again", SplitOptions{});
  for (const auto& entry : std::filesystem::directory_iterator(f.store)) {
    EXPECT_EQ(read_bytes(entry.path()), read_bytes(tmp / "again" / entry.path().filename()))
        << entry.path().filename();
  }
}

TEST(StoreTest, JoinKeepsNonZeroGapBytes) {
  TempDir tmp;
  // vocab 513 with Q8_0 rows of 272 bytes leaves 16 bytes of padding after token_embd.
  SynthOptions options;
  options.preset = "tiny";
  options.layers = 1;
  options.quant = "q8_0";
  SynthShape shape = synth_preset("tiny");
  shape.vocab_size = 513;
  options.shape = shape;
  std::filesystem::path gguf = tmp / "gap.gguf";
  synth_model(options, gguf);
  GgufFile g = GgufFile::open(gguf);
  const GgufTensorInfo* embd = g.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  uint64_t pad_at = g.data_offset() + embd->offset + embd->size;
  ASSERT_NE(embd->size % g.alignment(), 0u) << "the shape no longer leaves padding";
  std::vector<uint8_t> bytes = read_bytes(gguf);
  bytes[pad_at] = 0xab;
  bytes[pad_at + 2] = 0xcd;
  bytes.insert(bytes.end(), {0, 0, 7, 0});  // a non-zero byte past the last tensor too
  test::write_bytes(gguf, bytes);

  store_split(gguf, tmp / "s", SplitOptions{});
  Manifest m = manifest_load(tmp / "s");
  ASSERT_EQ(m.gguf_gaps.size(), 2u);
  EXPECT_EQ(m.gguf_gaps[0].offset, embd->offset + embd->size);
  EXPECT_EQ(m.gguf_gaps[0].hex, "ab00cd");
  EXPECT_EQ(m.gguf_gaps[1].hex, "07");
  store_join(tmp / "s", tmp / "j.gguf", nullptr);
  EXPECT_EQ(read_bytes(tmp / "j.gguf"), bytes);
}

TEST(StoreTest, ProgressReachesTheTotal) {
  TempDir tmp;
  SynthOptions options;
  options.layers = 1;
  synth_model(options, tmp / "m.gguf");
  uint64_t last_done = 0, last_total = 0, calls = 0;
  SplitOptions so;
  so.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last_done);
    last_done = done;
    last_total = total;
    ++calls;
  };
  store_split(tmp / "m.gguf", tmp / "s", so);
  EXPECT_GT(calls, 0u);
  EXPECT_EQ(last_done, last_total);
  VerifyOptions vo;
  vo.jobs = 2;
  last_done = 0;
  vo.progress = so.progress;
  store_verify(tmp / "s", vo);
  EXPECT_EQ(last_done, last_total);
}

// ---- split's output folder rules ----

TEST(StoreTest, SplitRefusesANonEmptyFolderUnlessForced) {
  TempDir tmp;
  auto f = make_store(tmp, "tiny", 1, "f16");
  std::filesystem::path out = tmp / "out";
  std::filesystem::create_directory(out);
  test::write_bytes(out / "keep.txt", {1, 2, 3});
  try {
    store_split(f.gguf, out, SplitOptions{});
    FAIL() << "split into a non-empty folder";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFragDirNotEmpty) << e.what();
  }
  EXPECT_TRUE(std::filesystem::exists(out / "keep.txt"));
  SplitOptions force;
  force.force = true;
  store_split(f.gguf, out, force);
  EXPECT_FALSE(std::filesystem::exists(out / "keep.txt"));
  EXPECT_TRUE(test::verify_all(out).ok());
  // An empty folder is fine without --force, and a trailing slash is ignored.
  std::filesystem::create_directory(tmp / "empty");
  store_split(f.gguf, (tmp / "empty").string() + "/", SplitOptions{});
  EXPECT_TRUE(test::verify_all(tmp / "empty").ok());
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".partial-"), std::string::npos)
        << entry.path();
    EXPECT_EQ(entry.path().filename().string().find(".old-"), std::string::npos) << entry.path();
  }
}

TEST(StoreTest, FailedSplitLeavesNothing) {
  TempDir tmp;
  test::write_bytes(tmp / "bad.gguf", {'G', 'G', 'U', 'F', 9, 0, 0, 0});
  EXPECT_THROW(store_split(tmp / "bad.gguf", tmp / "out", SplitOptions{}), Error);
  EXPECT_THROW(store_split(tmp / "missing.gguf", tmp / "out", SplitOptions{}), Error);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(StoreTest, SplitCreatesMissingParents) {
  TempDir tmp;
  auto f = make_store(tmp, "tiny", 1, "q8_0");
  store_split(f.gguf, tmp / "a" / "b" / "store", SplitOptions{});
  EXPECT_TRUE(test::verify_all(tmp / "a" / "b" / "store").ok());
}

TEST(StoreTest, VerifyWarnsAboutALeftoverPartialFolder) {
  TempDir tmp;
  auto f = make_store(tmp, "tiny", 1, "q8_0");
  std::filesystem::create_directory(f.store.string() + ".partial-99999");
  VerifyReport r = test::verify_all(f.store);
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0].code, ErrorCode::kFragIncomplete);
}

// ---- FragmentStore ----

TEST(FragmentStoreTest, LoadTensorReturnsTheGgufBytes) {
  TempDir tmp;
  auto f = make_store(tmp, "tiny-magistral", 2, "q4_k_m");
  FragmentStore store = FragmentStore::open(f.store);
  GgufFile g = GgufFile::open(f.gguf);
  EXPECT_EQ(store.manifest().params.n_layers, 2u);
  for (const GgufTensorInfo& t : g.tensors()) {
    std::span<const uint8_t> bytes = store.load_tensor(t.name);
    ASSERT_EQ(bytes.size(), t.size) << t.name;
    EXPECT_EQ(std::memcmp(bytes.data(), g.tensor_data(t), t.size), 0) << t.name;
    EXPECT_EQ(store.tensor(t.name).type, t.type);
    EXPECT_EQ(store.load_tensor(t.name).data(), bytes.data()) << "not cached";
  }
  try {
    store.load_tensor("blk.9.attn_q.weight");
    FAIL() << "loaded an unknown tensor";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFragTensorLookup);
  }
  EXPECT_THROW(store.tensor("nope"), Error);
}

TEST(FragmentStoreTest, RefusesACorruptedTensor) {
  TempDir tmp;
  auto f = make_store(tmp, "tiny", 2, "q8_0");
  Manifest m = manifest_load(f.store);
  const ManifestFragment* blk1 = m.layer_fragment(1);
  const ManifestTensor& victim = blk1->tensors[3];
  test::flip_bit(f.store / blk1->file, (victim.offset + victim.size / 2) * 8 + 3);
  FragmentStore store = FragmentStore::open(f.store);
  EXPECT_NO_THROW(store.load_tensor(blk1->tensors[2].name));  // its neighbours are fine
  try {
    store.load_tensor(victim.name);
    FAIL() << "served a corrupted tensor";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFragChecksum);
    EXPECT_NE(std::string(e.what()).find(victim.name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("blk.1.lwf"), std::string::npos) << e.what();
  }
  std::filesystem::remove(f.store / "blk.0.lwf");
  try {
    store.load_tensor("blk.0.attn_q.weight");
    FAIL() << "loaded from a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFragMissing) << e.what();
  }
  test::write_bytes(f.store / "output.lwf", {1, 2, 3});
  try {
    store.load_tensor("output.weight");
    FAIL() << "loaded from a truncated file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFragSize) << e.what();
  }
}

// ---- selections ----

TEST(LayerRangeTest, Parse) {
  LayerRange r = LayerRange::parse("2-5", 8);
  EXPECT_EQ(r.begin, 2);
  EXPECT_EQ(r.end, 6);
  EXPECT_TRUE(r.contains(5));
  EXPECT_FALSE(r.contains(6));
  EXPECT_FALSE(r.contains(1));
  EXPECT_EQ(r.to_string(), "2-5");
  EXPECT_EQ(LayerRange::parse("7", 8).to_string(), "7-7");
  for (const char* bad : {"", "a", "1-", "-1", "1-b", "1--2", "3.5", " 1-2"}) {
    try {
      LayerRange::parse(bad, 8);
      ADD_FAILURE() << "parsed \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCliArgument) << bad;
    }
  }
  for (const char* outside : {"5-2", "0-8", "8", "9-12"}) {
    try {
      LayerRange::parse(outside, 8);
      ADD_FAILURE() << "parsed \"" << outside << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFragLayerRange) << outside;
    }
  }
}

TEST(StoreTest, VerifyLayersChecksOnlyTheSelection) {
  TempDir tmp;
  auto f = make_store(tmp, "tiny", 4, "q8_0");
  Manifest m = manifest_load(f.store);
  // A host serving layers 1-2 has only those files, the head files and the manifest.
  std::filesystem::remove(f.store / "blk.0.lwf");
  std::filesystem::remove(f.store / "blk.3.lwf");
  std::filesystem::remove(f.store / "gguf_header.lwf");
  test::write_bytes(f.store / "notes.txt", {1});
  VerifyOptions o;
  o.selection.all = false;
  o.selection.layers = LayerRange::parse("1-2", 4);
  VerifyReport r = store_verify(f.store, o);
  EXPECT_TRUE(r.ok()) << test::describe(r);
  EXPECT_EQ(r.files_checked, 4u);  // blk.1, blk.2, embedding, output

  std::filesystem::remove(f.store / "embedding.lwf");
  r = store_verify(f.store, o);
  EXPECT_EQ(r.problems.size(), 1u) << test::describe(r);
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragMissing, "embedding.lwf"));
  o.selection.head = false;
  r = store_verify(f.store, o);
  EXPECT_TRUE(r.ok()) << test::describe(r);
  EXPECT_EQ(r.files_checked, 2u);

  const ManifestTensor& t = m.layer_fragment(2)->tensors[1];
  test::flip_bit(f.store / "blk.2.lwf", t.offset * 8 + 100);
  r = store_verify(f.store, o);
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragChecksum, "blk.2.lwf", t.name)) << test::describe(r);

  // The whole store: missing and extra files are all reported.
  r = test::verify_all(f.store);
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragMissing, "blk.0.lwf"));
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragMissing, "blk.3.lwf"));
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragMissing, "gguf_header.lwf"));
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragMissing, "embedding.lwf"));
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragExtra, "notes.txt"));

  // Head only (what a client checks).
  VerifyOptions head;
  head.selection.all = false;
  head.selection.head = true;
  r = store_verify(f.store, head);
  EXPECT_EQ(r.files_checked, 2u);
  EXPECT_TRUE(has_problem(r, ErrorCode::kFragMissing, "embedding.lwf"));
  EXPECT_EQ(r.problems.size(), 1u) << test::describe(r);
}

TEST(StoreTest, FragmentSelectionIncludes) {
  ManifestFragment header{"gguf_header.lwf", FragmentRole::GgufHeader, -1, 0, {}, {}};
  ManifestFragment embd{"embedding.lwf", FragmentRole::Embedding, -1, 0, {}, {}};
  ManifestFragment blk3{"blk.3.lwf", FragmentRole::Layer, 3, 0, {}, {}};
  FragmentSelection all;
  EXPECT_TRUE(all.includes(header) && all.includes(embd) && all.includes(blk3));
  FragmentSelection some;
  some.all = false;
  some.layers = LayerRange{0, 3};
  EXPECT_FALSE(some.includes(header));
  EXPECT_TRUE(some.includes(embd));
  EXPECT_FALSE(some.includes(blk3));
  some.layers = LayerRange{3, 4};
  some.head = false;
  EXPECT_TRUE(some.includes(blk3));
  EXPECT_FALSE(some.includes(embd));
}

}  // namespace
}  // namespace lw
