// Helpers shared by the fragment store tests: synthesize + split a small model into a
// TempDir, flip bits, copy stores, and look for a problem in a VerifyReport.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "fragments/store.h"
#include "fragments/synth.h"
#include "tests/support/test_support.h"

namespace lw::test {

struct StoreFixture {
  std::filesystem::path gguf;
  std::filesystem::path store;
};

inline StoreFixture make_store(const TempDir& tmp, const std::string& preset, int layers,
                               const std::string& quant, uint32_t gguf_version = 3,
                               const std::string& name = "model") {
  StoreFixture f{tmp / (name + ".gguf"), tmp / (name + ".store")};
  SynthOptions options;
  options.preset = preset;
  options.layers = layers;
  options.quant = quant;
  options.seed = 7;
  options.gguf_version = gguf_version;
  synth_model(options, f.gguf);
  store_split(f.gguf, f.store, SplitOptions{});
  return f;
}

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Flips bit `bit` (0 = lowest bit of byte 0) of a file in place; calling twice restores it.
inline void flip_bit(const std::filesystem::path& path, uint64_t bit) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  ASSERT_TRUE(f.good()) << path;
  char c;
  f.seekg(static_cast<std::streamoff>(bit / 8));
  f.get(c);
  c = static_cast<char>(c ^ (1 << (bit % 8)));
  f.seekp(static_cast<std::streamoff>(bit / 8));
  f.put(c);
}

inline void copy_dir(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::remove_all(to);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

// True when the report has a problem with this code naming `file` (and `tensor` unless "*").
inline bool has_problem(const VerifyReport& r, ErrorCode code, const std::string& file,
                        const std::string& tensor = "*") {
  for (const VerifyProblem& p : r.problems) {
    if (p.code == code && p.file == file && (tensor == "*" || p.tensor == tensor)) return true;
  }
  return false;
}

inline std::string describe(const VerifyReport& r) {
  std::string s = std::to_string(r.problems.size()) + " problems:";
  for (const VerifyProblem& p : r.problems) {
    s += "\n  " + std::string(error_info(p.code).id) + " " + p.file + " [" + p.tensor + "] " +
         p.detail;
  }
  return s;
}

inline VerifyReport verify_all(const std::filesystem::path& store, bool quick = false,
                               unsigned jobs = 1) {
  VerifyOptions options;
  options.quick = quick;
  options.jobs = jobs;
  return store_verify(store, options);
}

}  // namespace lw::test
