// A table of named corruptions of a fragment store, each with the error code verify must
// report and the file (and tensor) it must name; plus what --quick, join and FragmentStore
// make of it. (The GGUF reader's own table is gguf_corruption_test.cpp.)
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "fragments/store.h"
#include "tests/unit/fragments/store_test_util.h"

namespace lw {
namespace {

namespace fs = std::filesystem;
using test::read_bytes;
using test::write_bytes;

struct Corruption {
  std::string name;
  std::function<void(const fs::path& store)> apply;
  ErrorCode code;
  std::string file;    // the file the problem names ("" when store_verify throws)
  std::string tensor;  // the tensor it names: "" the whole file, "*" any
  bool thrown = false;       // store_verify throws (the manifest itself is bad)
  bool quick = true;         // verify --quick catches it too
  bool join_refuses = true;  // store_join throws
};

void xor_byte(const fs::path& path, uint64_t offset, uint8_t mask) {
  std::vector<uint8_t> b = read_bytes(path);
  ASSERT_LT(offset, b.size()) << path;
  b[offset] ^= mask;
  write_bytes(path, b);
}

void edit_manifest(const fs::path& store, const std::function<void(nlohmann::json&)>& edit,
                   bool restamp) {
  nlohmann::json j = nlohmann::json::parse(read_bytes(store / kManifestFile));
  edit(j);
  if (restamp) {
    j.erase("digest");
    std::string compact = j.dump();
    j["digest"] = xxh3_128(compact.data(), compact.size()).hex();
  }
  write_text_file(store / kManifestFile, j.dump(2));
}

class StoreCorruptionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    pristine_ = test::make_store(*tmp_, "tiny", 2, "q8_0").store;
    m_ = new Manifest(manifest_load(pristine_));
  }
  static void TearDownTestSuite() {
    delete m_;
    delete tmp_;
  }
  static test::TempDir* tmp_;
  static fs::path pristine_;
  static Manifest* m_;
};
test::TempDir* StoreCorruptionTest::tmp_ = nullptr;
fs::path StoreCorruptionTest::pristine_;
Manifest* StoreCorruptionTest::m_ = nullptr;

TEST_F(StoreCorruptionTest, NamedCorruptionsAreReported) {
  const Manifest& m = *m_;
  const ManifestFragment& blk0 = *m.layer_fragment(0);
  const ManifestFragment& blk1 = *m.layer_fragment(1);
  const ManifestTensor& t12 = blk1.tensors[2];
  const uint64_t dir1 = sizeof(FragmentHeader) + sizeof(FragmentTensorEntry);  // blk0 entry 1
  uint64_t names_end = sizeof(FragmentHeader) + sizeof(FragmentTensorEntry) * blk0.tensors.size();
  for (const ManifestTensor& t : blk0.tensors) names_end += 2 + t.name.size();
  ASSERT_LT(names_end, blk0.tensors[0].offset) << "no padding before the data to corrupt";

  const std::vector<Corruption> table = {
      {"bit flip in a tensor",
       [&](const fs::path& s) { xor_byte(s / "blk.1.lwf", t12.offset + t12.size / 2, 0x10); },
       ErrorCode::kFragChecksum, "blk.1.lwf", t12.name, false, false},
      {"bit flip in the last byte of a file",
       [&](const fs::path& s) { xor_byte(s / "output.lwf", m.fragments.back().size - 1, 0x80); },
       ErrorCode::kFragChecksum, "output.lwf", "output.weight", false, false},
      {"bit flip in the padding before the tensor data (layout check)",
       [&](const fs::path& s) { xor_byte(s / "blk.0.lwf", names_end + 1, 0x01); },
       ErrorCode::kFragHeader, "blk.0.lwf", ""},
      {"bit flip in the padding before the tensor data (file hash)",
       [&](const fs::path& s) { xor_byte(s / "blk.0.lwf", names_end + 1, 0x01); },
       ErrorCode::kFragChecksum, "blk.0.lwf", "", false, false},
      {"bit flip in a directory entry's reserved bytes",
       [&](const fs::path& s) { xor_byte(s / "blk.0.lwf", dir1 + 90, 0x40); },
       ErrorCode::kFragHeader, "blk.0.lwf", blk0.tensors[1].name},
      {"bit flip in the fragment header (layer field)",
       [&](const fs::path& s) { xor_byte(s / "blk.1.lwf", 16, 0x04); },
       ErrorCode::kFragHeader, "blk.1.lwf", ""},
      {"bit flip in the magic",
       [&](const fs::path& s) { xor_byte(s / "embedding.lwf", 2, 0x20); },
       ErrorCode::kFragHeader, "embedding.lwf", ""},
      {"bit flip in the directory (a tensor hash)",
       [&](const fs::path& s) { xor_byte(s / "blk.0.lwf", dir1 + 72, 0x02); },
       ErrorCode::kFragHeader, "blk.0.lwf", blk0.tensors[1].name},
      {"bit flip in the directory (a tensor type)",
       [&](const fs::path& s) { xor_byte(s / "blk.0.lwf", dir1, 0x01); },
       ErrorCode::kFragHeader, "blk.0.lwf", blk0.tensors[1].name},
      {"bit flip in a tensor name",
       [&](const fs::path& s) {
         xor_byte(s / "blk.0.lwf", sizeof(FragmentHeader) + 96 * blk0.tensors.size() + 4, 0x01);
       },
       ErrorCode::kFragHeader, "blk.0.lwf", blk0.tensors[0].name},
      {"bit flip in the kept GGUF header bytes",
       [&](const fs::path& s) { xor_byte(s / "gguf_header.lwf", 64 + 100, 0x08); },
       ErrorCode::kFragChecksum, "gguf_header.lwf", "", false, false},
      {"a 4 KiB block of a tensor zeroed",
       [&](const fs::path& s) {
         std::vector<uint8_t> b = read_bytes(s / "blk.1.lwf");
         std::fill_n(b.begin() + static_cast<long>(t12.offset), 4096, 0);
         write_bytes(s / "blk.1.lwf", b);
       },
       ErrorCode::kFragChecksum, "blk.1.lwf", t12.name, false, false},
      {"truncated file",
       [&](const fs::path& s) { fs::resize_file(s / "blk.1.lwf", blk1.size - 1000); },
       ErrorCode::kFragSize, "blk.1.lwf", ""},
      {"truncated inside the header",
       [&](const fs::path& s) { fs::resize_file(s / "blk.1.lwf", 40); },
       ErrorCode::kFragSize, "blk.1.lwf", ""},
      {"empty file", [&](const fs::path& s) { fs::resize_file(s / "output.lwf", 0); },
       ErrorCode::kFragSize, "output.lwf", ""},
      {"grown file",
       [&](const fs::path& s) { fs::resize_file(s / "blk.0.lwf", blk0.size + 1); },
       ErrorCode::kFragSize, "blk.0.lwf", ""},
      {"missing file", [&](const fs::path& s) { fs::remove(s / "output.lwf"); },
       ErrorCode::kFragMissing, "output.lwf", ""},
      {"missing GGUF header file", [&](const fs::path& s) { fs::remove(s / "gguf_header.lwf"); },
       ErrorCode::kFragMissing, "gguf_header.lwf", ""},
      {"fragment replaced by a folder",
       [&](const fs::path& s) {
         fs::remove(s / "embedding.lwf");
         fs::create_directory(s / "embedding.lwf");
       },
       ErrorCode::kFragMissing, "embedding.lwf", ""},
      {"extra file", [&](const fs::path& s) { write_bytes(s / "stray.lwf", {1, 2, 3}); },
       ErrorCode::kFragExtra, "stray.lwf", "", false, true, false},
      {"extra folder", [&](const fs::path& s) { fs::create_directory(s / "old"); },
       ErrorCode::kFragExtra, "old", "", false, true, false},
      {"renamed fragment (missing side)",
       [&](const fs::path& s) { fs::rename(s / "blk.1.lwf", s / "blk.1.lwf.bak"); },
       ErrorCode::kFragMissing, "blk.1.lwf", ""},
      {"renamed fragment (extra side)",
       [&](const fs::path& s) { fs::rename(s / "blk.1.lwf", s / "blk.1.lwf.bak"); },
       ErrorCode::kFragExtra, "blk.1.lwf.bak", ""},
      {"swapped two layer files",
       [&](const fs::path& s) {
         fs::rename(s / "blk.0.lwf", s / "tmp");
         fs::rename(s / "blk.1.lwf", s / "blk.0.lwf");
         fs::rename(s / "tmp", s / "blk.1.lwf");
       },
       ErrorCode::kFragHeader, "blk.0.lwf", ""},
      {"manifest with a wrong tensor hash but a recomputed digest",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) {
           j["fragments"][3]["tensors"][1]["xxh3"] = std::string(32, 'a');
         }, true);
       },
       ErrorCode::kFragChecksum, "blk.1.lwf", blk1.tensors[1].name, false, false},
      {"manifest with a wrong file hash but a recomputed digest",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) {
           j["fragments"][1]["xxh3"] = std::string(32, 'b');
         }, true);
       },
       ErrorCode::kFragChecksum, "embedding.lwf", "", false, false, false},
      {"edited manifest value (digest mismatch)",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) { j["params"]["dim"] = 512; }, false);
       },
       ErrorCode::kManifestDigest, "", "", true},
      {"edited manifest tensor offset (digest mismatch)",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) {
           j["fragments"][2]["tensors"][0]["gguf_offset"] = 1;
         }, false);
       },
       ErrorCode::kManifestDigest, "", "", true},
      {"manifest inconsistent with the layout (digest recomputed)",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) { j["fragments"][2]["size"] = 12345; }, true);
       },
       ErrorCode::kManifestParse, "", "", true},
      {"manifest tensor offset moved (digest recomputed)",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) {
           auto& t = j["fragments"][3]["tensors"][1]["offset"];
           t = t.get<uint64_t>() + 256;
         }, true);
       },
       ErrorCode::kManifestParse, "", "", true},
      {"manifest tensor size edited (digest recomputed)",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) {
           auto& t = j["fragments"][3]["tensors"][2]["size"];
           t = t.get<uint64_t>() - 34;
         }, true);
       },
       ErrorCode::kManifestParse, "", "", true},
      {"manifest layer number edited (digest recomputed)",
       [&](const fs::path& s) {
         edit_manifest(s, [](nlohmann::json& j) { j["fragments"][3]["layer"] = 0; }, true);
       },
       ErrorCode::kManifestParse, "", "", true},
      {"manifest made invalid JSON",
       [&](const fs::path& s) {
         std::vector<uint8_t> b = read_bytes(s / kManifestFile);
         b.resize(b.size() / 2);
         write_bytes(s / kManifestFile, b);
       },
       ErrorCode::kManifestParse, "", "", true},
      {"missing manifest", [&](const fs::path& s) { fs::remove(s / kManifestFile); },
       ErrorCode::kManifestParse, "", "", true},
  };
  ASSERT_GE(table.size(), 12u);

  for (const Corruption& c : table) {
    SCOPED_TRACE(c.name);
    fs::path store = tmp_->path() / "work";
    test::copy_dir(pristine_, store);
    c.apply(store);
    for (bool quick : {false, true}) {
      if (quick && !c.quick && !c.thrown) {
        // --quick does not hash: it must not invent problems either.
        VerifyReport r = test::verify_all(store, true);
        EXPECT_FALSE(test::has_problem(r, c.code, c.file, c.tensor)) << test::describe(r);
        continue;
      }
      if (c.thrown) {
        try {
          test::verify_all(store, quick);
          ADD_FAILURE() << "verify accepted the store";
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), c.code) << e.what();
        }
        continue;
      }
      VerifyReport r = test::verify_all(store, quick, 2);
      EXPECT_FALSE(r.ok());
      EXPECT_TRUE(test::has_problem(r, c.code, c.file, c.tensor))
          << "expected " << error_info(c.code).id << " naming " << c.file << " [" << c.tensor
          << "] (quick " << quick << "); got " << test::describe(r);
    }
    fs::path joined = tmp_->path() / "joined.gguf";
    fs::remove(joined);
    if (c.join_refuses) {
      EXPECT_THROW(store_join(store, joined, nullptr), Error);
      EXPECT_FALSE(fs::exists(joined));
    } else {
      store_join(store, joined, nullptr);
      EXPECT_TRUE(fs::exists(joined));
    }
    for (const auto& entry : fs::directory_iterator(tmp_->path())) {
      EXPECT_EQ(entry.path().filename().string().find(".partial-"), std::string::npos);
    }
  }
}

TEST_F(StoreCorruptionTest, FragmentStoreRefusesCorruptedFiles) {
  const ManifestFragment& blk1 = *m_->layer_fragment(1);
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> apply;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"tensor bit flip",
       [&](const fs::path& s) { xor_byte(s / "blk.1.lwf", blk1.tensors[0].offset, 1); },
       ErrorCode::kFragChecksum},
      {"header bit flip", [&](const fs::path& s) { xor_byte(s / "blk.1.lwf", 12, 1); },
       ErrorCode::kFragHeader},
      {"truncated", [&](const fs::path& s) { fs::resize_file(s / "blk.1.lwf", 100); },
       ErrorCode::kFragSize},
      {"missing", [&](const fs::path& s) { fs::remove(s / "blk.1.lwf"); },
       ErrorCode::kFragMissing},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    fs::path store = tmp_->path() / "work";
    test::copy_dir(pristine_, store);
    c.apply(store);
    FragmentStore fs_store = FragmentStore::open(store);
    try {
      fs_store.load_tensor(blk1.tensors[0].name);
      ADD_FAILURE() << "loaded a tensor of a corrupted file";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), c.code) << e.what();
      EXPECT_NE(std::string(e.what()).find("blk.1.lwf"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(fs_store.load_tensor(m_->layer_fragment(0)->tensors[0].name));
  }
}

}  // namespace
}  // namespace lw
