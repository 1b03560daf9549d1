// Bit-flip fuzzing of a tiny store: every flipped bit anywhere in any file must be caught by
// verify and blamed on the right file (and on the right tensor when it lies inside one).
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "fragments/store.h"
#include "tests/unit/fragments/store_test_util.h"

namespace lw {
namespace {

namespace fs = std::filesystem;

class BitflipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = test::make_store(tmp_, "tiny", 3, "q4_k_m").store;
    m_ = manifest_load(store_);
    canonical_ = manifest_to_json(m_);
    files_.push_back(kManifestFile);
    for (const ManifestFragment& f : m_.fragments) files_.push_back(f.file);
  }

  // Flips `bit` of `file`, checks verify's verdict, and flips it back.
  void trial(const std::string& file, uint64_t bit) {
    SCOPED_TRACE(file + " bit " + std::to_string(bit));
    test::flip_bit(store_ / file, bit);
    if (file == kManifestFile) {
      check_manifest_flip();
    } else {
      check_fragment_flip(*m_.find_fragment(file), bit / 8);
    }
    test::flip_bit(store_ / file, bit);
    ++trials_;
  }

  void check_manifest_flip() {
    try {
      Manifest edited = manifest_load(store_);
      // Only a flip that leaves the same JSON value (e.g. "e-06" -> "E-06") may pass.
      EXPECT_EQ(manifest_to_json(edited), canonical_) << "an edited manifest was accepted";
      ++benign_;
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::kManifestParse || e.code() == ErrorCode::kManifestDigest)
          << e.what();
    }
  }

  void check_fragment_flip(const ManifestFragment& f, uint64_t byte) {
    VerifyReport r = test::verify_all(store_, false, 2);
    ASSERT_FALSE(r.ok()) << "flip not detected";
    for (const VerifyProblem& p : r.problems) {
      EXPECT_EQ(p.file, f.file) << "blamed the wrong file: " << test::describe(r);
    }
    const ManifestTensor* hit = nullptr;
    for (const ManifestTensor& t : f.tensors) {
      if (byte >= t.offset && byte < t.offset + t.size) hit = &t;
    }
    if (hit != nullptr) {
      EXPECT_TRUE(test::has_problem(r, ErrorCode::kFragChecksum, f.file, hit->name))
          << test::describe(r);
      for (const VerifyProblem& p : r.problems) {
        EXPECT_TRUE(p.tensor.empty() || p.tensor == hit->name) << test::describe(r);
      }
      ++in_tensor_;
    } else {
      EXPECT_TRUE(test::has_problem(r, ErrorCode::kFragChecksum, f.file, "") ||
                  test::has_problem(r, ErrorCode::kFragHeader, f.file))
          << test::describe(r);
      ++outside_;
    }
  }

  test::TempDir tmp_;
  fs::path store_;
  Manifest m_;
  std::string canonical_;
  std::vector<std::string> files_;
  int trials_ = 0, benign_ = 0, in_tensor_ = 0, outside_ = 0;
};

TEST_F(BitflipTest, EveryFlipIsCaughtAndBlamedOnTheRightFile) {
  std::mt19937_64 rng(20240601);
  // Anywhere in any file (the manifest included).
  for (int i = 0; i < 240; ++i) {
    const std::string& file = files_[rng() % files_.size()];
    uint64_t bits = fs::file_size(store_ / file) * 8;
    trial(file, rng() % bits);
  }
  // Aimed at the headers, directories, names and padding, which are small targets.
  for (int i = 0; i < 80; ++i) {
    const ManifestFragment& f = m_.fragments[1 + rng() % (m_.fragments.size() - 1)];
    trial(f.file, rng() % (f.tensors[0].offset * 8));
  }
  EXPECT_EQ(trials_, 320);
  EXPECT_GT(in_tensor_, 100);
  EXPECT_GT(outside_, 60);
  EXPECT_LT(benign_, 10);
  // Every flip was undone: the store is intact again.
  VerifyReport r = test::verify_all(store_);
  EXPECT_TRUE(r.ok()) << test::describe(r);
}

TEST_F(BitflipTest, JoinRefusesAFlippedTensor) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10; ++i) {
    const ManifestFragment& f = m_.fragments[1 + rng() % (m_.fragments.size() - 1)];
    const ManifestTensor& t = f.tensors[rng() % f.tensors.size()];
    uint64_t bit = (t.offset + rng() % t.size) * 8 + rng() % 8;
    test::flip_bit(store_ / f.file, bit);
    try {
      store_join(store_, tmp_ / "j.gguf", nullptr);
      ADD_FAILURE() << "joined a store with a flipped bit in " << t.name;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFragChecksum) << e.what();
      EXPECT_NE(std::string(e.what()).find(t.name), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(tmp_ / "j.gguf"));
    test::flip_bit(store_ / f.file, bit);
  }
}

}  // namespace
}  // namespace lw
