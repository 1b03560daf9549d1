// fragment_tool end to end, as users run it (a subprocess per command): --help of every
// command, the exit codes of docs/FRAGMENT_TOOL.md (0 ok, 1 verify found problems, 2 bad
// command line, 3 bad input, 4 I/O), split's refusal to overwrite and its behaviour when
// killed mid-way, verify's report of missing / extra / truncated / corrupted files (full,
// --quick, --jobs, --layers, --head-only), inspect of a store and of a GGUF (--json), join's
// byte-exact output, and synth's presets and quant mixes. Expected values come from the
// synth presets documented in fragments/synth.h, from llama.cpp's Q4_K_M rule and from the
// GGML block sizes, never from the tool's own output.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_support.h"

extern char** environ;

namespace lw {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void xor_byte(const fs::path& path, uint64_t offset) {
  std::vector<uint8_t> b = read_file(path);
  ASSERT_LT(offset, b.size()) << path;
  b[offset] ^= 0x20;
  write_file(path, b);
}

test::CommandResult ft(const std::string& args) {
  return test::run_command(test::tool_path("fragment_tool").string() + " --no-progress " + args);
}

// Parses the stdout of a --json command (stderr is merged by run_command, so the JSON is the
// text from the first '{' on; the tools print nothing else on success).
json parse_json(const test::CommandResult& r) {
  size_t start = r.output.find('{');
  EXPECT_NE(start, std::string::npos) << r.output;
  if (start == std::string::npos) return json();
  return json::parse(r.output.substr(start));
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// True when one line of the output holds every one of `parts`.
bool line_with(const std::string& text, const std::vector<std::string>& parts) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    bool all = true;
    for (const std::string& p : parts) all = all && contains(line, p);
    if (all) return true;
    pos = end + 1;
  }
  return false;
}

// GGML storage size of a tensor: block elements and bytes per block of each type.
uint64_t ggml_bytes(const std::string& type, const std::vector<uint64_t>& ne) {
  static const std::map<std::string, std::pair<uint64_t, uint64_t>> kBlocks = {
      {"f32", {1, 4}},    {"f16", {1, 2}},      {"bf16", {1, 2}},     {"q8_0", {32, 34}},
      {"q4_K", {256, 144}}, {"q5_K", {256, 176}}, {"q6_K", {256, 210}}};
  auto it = kBlocks.find(type);
  EXPECT_NE(it, kBlocks.end()) << type;
  if (it == kBlocks.end()) return 0;
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
  return rows * (ne[0] / it->second.first) * it->second.second;
}

// llama.cpp's use_more_bits(i_layer, n_layers) (llama-quant.cpp): the layers where Q4_K_M
// stores attn_v and ffn_down as Q6_K.
bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The tensor names of a llama model with n layers.
std::set<std::string> llama_tensor_names(int n) {
  std::set<std::string> names = {"token_embd.weight", "output_norm.weight", "output.weight"};
  for (int i = 0; i < n; ++i) {
    for (const char* t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                          "ffn_gate", "ffn_up", "ffn_down"}) {
      names.insert("blk." + std::to_string(i) + "." + t + ".weight");
    }
  }
  return names;
}

// The tiny preset of fragments/synth.h with 3 layers, split once for the whole suite.
class FragmentToolTest : public testing::Test {
 protected:
  static constexpr int kLayers = 3;

  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    gguf_ = tmp_->path() / "tiny.gguf";
    store_ = tmp_->path() / "tiny.store";
    test::CommandResult s = ft("synth --preset tiny --layers 3 --quant q4_k_m --seed 11 -o " +
                               gguf_.string());
    ASSERT_EQ(s.exit_code, 0) << s.output;
    test::CommandResult r = ft("split " + gguf_.string() + " -o " + store_.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    manifest_ = new json(json::parse(read_file(store_ / "manifest.json")));
  }
  static void TearDownTestSuite() {
    delete manifest_;
    delete tmp_;
  }

  // A fresh copy of the pristine store, to damage.
  fs::path copy_store(const std::string& name) const {
    fs::path to = dir_ / name;
    fs::copy(store_, to, fs::copy_options::recursive);
    return to;
  }
  // The manifest's entry of a fragment file, and of a tensor in it.
  static const json& fragment(const std::string& file) {
    for (const json& f : (*manifest_)["fragments"]) {
      if (f["file"] == file) return f;
    }
    throw std::runtime_error("no fragment " + file);
  }
  static const json& tensor(const std::string& file, size_t i) {
    return fragment(file)["tensors"].at(i);
  }

  static test::TempDir* tmp_;
  static fs::path gguf_, store_;
  static json* manifest_;
  test::TempDir dir_;  // per test
};
test::TempDir* FragmentToolTest::tmp_ = nullptr;
fs::path FragmentToolTest::gguf_;
fs::path FragmentToolTest::store_;
json* FragmentToolTest::manifest_ = nullptr;

TEST_F(FragmentToolTest, HelpOfEveryCommandNamesItsOptions) {
  const std::map<std::string, std::vector<std::string>> options = {
      {"", {"split", "verify", "inspect", "join", "synth", "--log-level", "--no-progress",
            "Exit codes"}},
      {"split", {"--output", "--force", "model", "partial"}},
      {"verify", {"--quick", "--jobs", "--layers", "--no-head", "--head-only", "--json"}},
      {"inspect", {"--json", "path"}},
      {"join", {"--output", "--force", "store"}},
      {"synth", {"--preset", "--layers", "--quant", "--seed", "--gguf-version", "--output",
                 "--force", "q4_k_m", "mistral-7b", "magistral-small"}},
  };
  for (const auto& [command, names] : options) {
    SCOPED_TRACE("command \"" + command + "\"");
    test::CommandResult r = ft(command + " --help");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (const std::string& name : names) {
      EXPECT_TRUE(contains(r.output, name)) << "help does not name " << name << ":\n" << r.output;
    }
    if (!command.empty()) {
      EXPECT_TRUE(contains(r.output, "Exit codes")) << r.output;
      EXPECT_TRUE(contains(r.output, "Examples")) << r.output;
    }
  }
}

TEST_F(FragmentToolTest, BadCommandLinesExitTwo) {
  const std::string g = gguf_.string(), s = store_.string(), out = (dir_ / "out").string();
  const std::vector<std::string> cases = {
      "",
      "frobnicate",
      "--log-level loud inspect " + s,
      "split " + g,
      "split " + g + " -o " + out + " --bogus",
      "split " + (dir_ / "no-such.gguf").string() + " -o " + out,
      "verify",
      "verify " + (dir_ / "no-such-store").string(),
      "verify " + s + " --jobs 0",
      "verify " + s + " --jobs many",
      "verify " + s + " --layers 2-99",
      "verify " + s + " --layers 2-1",
      "verify " + s + " --layers x",
      "verify " + s + " --no-head",
      "verify " + s + " --head-only --layers 0",
      "inspect",
      "inspect " + (dir_ / "nothing-here").string(),
      "join " + s,
      "join " + g + " -o " + out,
      "synth -o " + out + " --preset huge",
      "synth -o " + out + " --quant q5_0",
      "synth -o " + out + " --layers 0",
      "synth -o " + out + " --gguf-version 1",
      "synth --preset tiny",
  };
  for (const std::string& args : cases) {
    test::CommandResult r = ft(args);
    EXPECT_EQ(r.exit_code, 2) << "fragment_tool " << args << "\n" << r.output;
    EXPECT_FALSE(r.output.empty()) << "fragment_tool " << args << " explained nothing";
  }
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(FragmentToolTest, BadInputExitsThreeAndIoErrorsFour) {
  write_file(dir_ / "not.gguf", std::vector<uint8_t>(4096, 'x'));
  test::CommandResult r = ft("split " + (dir_ / "not.gguf").string() + " -o " +
                             (dir_ / "out").string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(line_with(r.output, {"LW-GGUF-001", "not.gguf"})) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  r = ft("inspect " + (dir_ / "not.gguf").string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(contains(r.output, "LW-GGUF-001")) << r.output;
  // A store folder without a manifest: inspect and join refuse it as bad input.
  fs::create_directory(dir_ / "empty");
  r = ft("inspect " + (dir_ / "empty").string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(contains(r.output, "LW-FRAG-006")) << r.output;
  r = ft("join " + (dir_ / "empty").string() + " -o " + (dir_ / "j.gguf").string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  // The OS refuses to create a folder in /proc, even for root.
  r = ft("split " + gguf_.string() + " -o /proc/lw-fragment-tool-test-store");
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_TRUE(contains(r.output, "LW-IO-")) << r.output;
}

TEST_F(FragmentToolTest, SplitRefusesANonEmptyOutputUnlessForced) {
  const fs::path out = dir_ / "out";
  fs::create_directory(out);
  write_file(out / "keep.txt", {'h', 'i'});
  test::CommandResult r = ft("split " + gguf_.string() + " -o " + out.string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(line_with(r.output, {"LW-FRAG-008", out.string(), "--force"})) << r.output;
  EXPECT_TRUE(fs::exists(out / "keep.txt"));
  EXPECT_FALSE(fs::exists(out / "manifest.json"));

  r = ft("split " + gguf_.string() + " -o " + out.string() + " --force");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "MB/s")) << r.output;
  EXPECT_FALSE(fs::exists(out / "keep.txt")) << "--force must replace the folder";
  EXPECT_EQ(read_file(out / "manifest.json"), read_file(store_ / "manifest.json"));
  r = ft("verify " + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // No temporary folder is left beside it.
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_FALSE(contains(e.path().filename().string(), ".partial-")) << e.path();
    EXPECT_FALSE(contains(e.path().filename().string(), ".old-")) << e.path();
  }
  // An empty folder is not "non-empty": no --force needed.
  fs::create_directory(dir_ / "empty");
  r = ft("split " + gguf_.string() + " -o " + (dir_ / "empty").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // A file in the way is refused even with --force.
  write_file(dir_ / "file", {1});
  r = ft("split " + gguf_.string() + " -o " + (dir_ / "file").string() + " --force");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(contains(r.output, "LW-FRAG-008")) << r.output;
}

// Starts `fragment_tool --no-progress split GGUF -o OUT [extra]`, waits until it has written
// at least one fragment file into OUT.partial-<pid>, and kills it with SIGKILL. Returns the
// partial folder (empty path, with a test failure, when split finished first).
fs::path kill_split_midway(const fs::path& gguf, const fs::path& out, bool force) {
  std::vector<std::string> args = {test::tool_path("fragment_tool").string(), "--no-progress",
                                   "split", gguf.string(), "-o", out.string()};
  if (force) args.push_back("--force");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "posix_spawn " << argv[0];
  if (rc != 0) return {};
  const fs::path partial = out.string() + ".partial-" + std::to_string(pid);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool killed = false;
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    bool has_fragment = false;
    for (const auto& e : fs::directory_iterator(partial, ec)) {
      if (e.path().extension() == ".lwf" && e.path().filename() != "gguf_header.lwf") {
        has_fragment = true;
      }
    }
    if (has_fragment) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      ADD_FAILURE() << "split finished (status " << status << ") before it could be killed";
      return {};
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  if (!killed) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(killed) << "no fragment appeared in " << partial << " within 60 s";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  return killed ? partial : fs::path();
}

TEST_F(FragmentToolTest, InterruptedSplitNeverLeavesAStoreThatLooksComplete) {
  // Large enough (f32, 40 layers: ~120 MB) that the split is still running when we look.
  const fs::path big = dir_ / "big.gguf";
  test::CommandResult r =
      ft("synth --preset tiny --layers 40 --quant f32 -o " + big.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path out = dir_ / "big.store";

  const fs::path partial = kill_split_midway(big, out, false);
  ASSERT_FALSE(partial.empty());
  EXPECT_FALSE(fs::exists(out)) << "a killed split must not create the store folder";
  EXPECT_TRUE(fs::is_directory(partial));
  EXPECT_FALSE(fs::exists(partial / "manifest.json")) << "the manifest is written last";
  r = ft("verify " + partial.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "LW-FRAG-006")) << r.output;
  r = ft("inspect " + partial.string());
  EXPECT_EQ(r.exit_code, 3) << r.output;

  // A later split succeeds; verify of the store passes and warns about the leftover folder.
  r = ft("split " + big.string() + " -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = ft("verify " + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(line_with(r.output, {"warning", "LW-FRAG-009", partial.filename().string()}))
      << r.output;
  fs::remove_all(partial);

  // Killing a --force split over an existing store leaves the old store intact.
  const std::vector<uint8_t> manifest_before = read_file(out / "manifest.json");
  const fs::path partial2 = kill_split_midway(big, out, true);
  ASSERT_FALSE(partial2.empty());
  EXPECT_EQ(read_file(out / "manifest.json"), manifest_before);
  r = ft("verify " + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "LW-FRAG-009")) << r.output;
}

TEST_F(FragmentToolTest, VerifyNamesMissingExtraTruncatedAndCorruptedFiles) {
  test::CommandResult r = ft("verify " + store_.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "OK")) << r.output;

  const json& t = tensor("blk.2.lwf", 3);
  const std::string t_name = t["name"];
  struct Damage {
    std::string name;
    std::function<void(const fs::path&)> apply;
    std::string code, file, tensor;
  };
  const std::vector<Damage> damages = {
      {"missing", [](const fs::path& s) { fs::remove(s / "blk.1.lwf"); }, "LW-FRAG-001",
       "blk.1.lwf", ""},
      {"extra", [](const fs::path& s) { write_file(s / "notes.txt", {'x'}); }, "LW-FRAG-002",
       "notes.txt", ""},
      {"truncated",
       [](const fs::path& s) {
         fs::resize_file(s / "blk.0.lwf", fs::file_size(s / "blk.0.lwf") - 7);
       },
       "LW-FRAG-003", "blk.0.lwf", ""},
      {"corrupted",
       [&](const fs::path& s) {
         xor_byte(s / "blk.2.lwf", t["offset"].get<uint64_t>() + t["size"].get<uint64_t>() / 3);
       },
       "LW-FRAG-004", "blk.2.lwf", t_name},
  };
  // Each damage alone, then all of them in one store.
  const fs::path all = copy_store("all");
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.name);
    const fs::path s = copy_store(d.name);
    d.apply(s);
    d.apply(all);
    r = ft("verify " + s.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    std::vector<std::string> parts = {d.code, d.file};
    if (!d.tensor.empty()) parts.push_back(d.tensor);
    EXPECT_TRUE(line_with(r.output, parts)) << r.output;
    EXPECT_TRUE(contains(r.output, "FAILED")) << r.output;

    r = ft("verify --json " + s.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    json j = parse_json(r);
    EXPECT_EQ(j["ok"], false);
    bool found = false;
    for (const json& p : j["problems"]) {
      found = found || (p["code"] == d.code && p["file"] == d.file &&
                        (d.tensor.empty() || p["tensor"] == d.tensor));
    }
    EXPECT_TRUE(found) << j.dump(2);
  }
  r = ft("verify " + all.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const Damage& d : damages) EXPECT_TRUE(line_with(r.output, {d.code, d.file})) << r.output;
}

TEST_F(FragmentToolTest, QuickCatchesSizeProblemsOnly) {
  const json& t = tensor("blk.1.lwf", 1);
  const fs::path flipped = copy_store("flipped");
  xor_byte(flipped / "blk.1.lwf", t["offset"].get<uint64_t>() + 5);
  test::CommandResult r = ft("verify --quick " + flipped.string());
  EXPECT_EQ(r.exit_code, 0) << "--quick does not hash, so a flipped tensor byte passes\n"
                            << r.output;
  EXPECT_TRUE(contains(r.output, "quick")) << r.output;
  r = ft("verify " + flipped.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;

  for (int64_t delta : {-1, +1}) {
    const fs::path s = copy_store("size" + std::to_string(delta + 1));
    fs::resize_file(s / "output.lwf", fs::file_size(s / "output.lwf") + delta);
    r = ft("verify -q " + s.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(line_with(r.output, {"LW-FRAG-003", "output.lwf"})) << r.output;
  }
  const fs::path gone = copy_store("gone");
  fs::remove(gone / "embedding.lwf");
  r = ft("verify --quick " + gone.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(line_with(r.output, {"LW-FRAG-001", "embedding.lwf"})) << r.output;
}

TEST_F(FragmentToolTest, JobsGiveTheSameVerdict) {
  const fs::path s = copy_store("bad");
  const json& t0 = tensor("blk.0.lwf", 0);
  const json& t2 = tensor("output.lwf", 1);
  xor_byte(s / "blk.0.lwf", t0["offset"].get<uint64_t>());
  xor_byte(s / "output.lwf", t2["offset"].get<uint64_t>() + t2["size"].get<uint64_t>() - 1);
  json first;
  for (int jobs : {1, 2, 3, 16}) {
    SCOPED_TRACE("jobs " + std::to_string(jobs));
    test::CommandResult r = ft("verify --json --jobs " + std::to_string(jobs) + " " +
                               store_.string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    json ok = parse_json(r);
    EXPECT_EQ(ok["jobs"], jobs);
    EXPECT_EQ(ok["files_checked"], (*manifest_)["fragments"].size());
    r = ft("verify --json -j " + std::to_string(jobs) + " " + s.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    json bad = parse_json(r);
    ASSERT_EQ(bad["problems"].size(), 4u) << bad.dump(2);  // per file: the tensor + the file
    if (first.is_null()) {
      first = bad["problems"];
    } else {
      EXPECT_EQ(bad["problems"], first);
    }
  }
  std::set<std::string> named;
  for (const json& p : first) named.insert(p["file"].get<std::string>() + "/" + p["tensor"].get<std::string>());
  EXPECT_EQ(named, (std::set<std::string>{"blk.0.lwf/", "blk.0.lwf/" + t0["name"].get<std::string>(),
                                          "output.lwf/", "output.lwf/" + t2["name"].get<std::string>()}));
}

TEST_F(FragmentToolTest, LayersAndHeadOnlyCheckWhatAHostServes) {
  const fs::path s = copy_store("sel");
  const json& t = tensor("blk.2.lwf", 4);
  xor_byte(s / "blk.2.lwf", t["offset"].get<uint64_t>() + 1);
  struct Case {
    std::string args;
    int exit_code;
    size_t files;  // fragments checked
  };
  for (const Case& c : std::vector<Case>{{"--layers 0-1", 0, 4},
                                         {"--layers 0-1 --no-head", 0, 2},
                                         {"--layers 1", 0, 3},
                                         {"--layers 2", 1, 3},
                                         {"--layers 1-2 --no-head", 1, 2},
                                         {"--head-only", 0, 2},
                                         {"", 1, 6}}) {
    SCOPED_TRACE(c.args);
    test::CommandResult r = ft("verify --json " + c.args + " " + s.string());
    EXPECT_EQ(r.exit_code, c.exit_code) << r.output;
    json j = parse_json(r);
    EXPECT_EQ(j["files_checked"], c.files);
    if (c.exit_code == 1) {
      bool named = false;
      for (const json& p : j["problems"]) {
        named = named || (p["code"] == "LW-FRAG-004" && p["file"] == "blk.2.lwf" &&
                          p["tensor"] == t["name"]);
      }
      EXPECT_TRUE(named) << r.output;
    }
  }
  // Head files missing and a stray file: a layer host does not care, a client does.
  const fs::path h = copy_store("head");
  fs::remove(h / "embedding.lwf");
  write_file(h / "stray.lwf", {0});
  test::CommandResult r = ft("verify --layers 0-2 --no-head " + h.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(contains(r.output, "stray.lwf")) << r.output;
  r = ft("verify --head-only " + h.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(line_with(r.output, {"LW-FRAG-001", "embedding.lwf"})) << r.output;
  r = ft("verify --layers 0 " + h.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = ft("verify " + h.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(line_with(r.output, {"LW-FRAG-002", "stray.lwf"})) << r.output;
}

// The checks shared by a store's and a GGUF's inspect --json: preset, hyper-parameters of
// the tiny preset (fragments/synth.h) with 3 layers, every llama tensor with its GGML size,
// bytes per type adding up.
void check_inspect_json(const json& j) {
  EXPECT_EQ(j["preset"], "llama-generic");  // tiny matches no named preset
  const json& p = j["params"];
  EXPECT_EQ(p["n_layers"], 3);
  EXPECT_EQ(p["dim"], 256);
  EXPECT_EQ(p["n_heads"], 8);
  EXPECT_EQ(p["n_kv_heads"], 2);
  EXPECT_EQ(p["head_dim"], 32);
  EXPECT_EQ(p["ffn_dim"], 768);
  EXPECT_EQ(p["vocab_size"], 512);
  std::set<std::string> names;
  std::map<std::string, uint64_t> per_type;
  uint64_t total = 0;
  for (const json& t : j["tensors"]) {
    names.insert(t["name"]);
    const uint64_t bytes = t["bytes"];
    EXPECT_EQ(bytes, ggml_bytes(t["type"], t["ne"].get<std::vector<uint64_t>>())) << t.dump();
    per_type[t["type"]] += bytes;
    total += bytes;
  }
  EXPECT_EQ(names, llama_tensor_names(3));
  EXPECT_EQ(j["tensor_bytes"], total);
  EXPECT_EQ(j["bytes_per_type"].size(), per_type.size()) << j["bytes_per_type"].dump();
  for (const auto& [type, bytes] : per_type) EXPECT_EQ(j["bytes_per_type"][type]["bytes"], bytes);
  for (const char* type : {"f32", "q4_K", "q6_K"}) EXPECT_TRUE(per_type.count(type)) << type;
}

TEST_F(FragmentToolTest, InspectStoreAndGguf) {
  test::CommandResult r = ft("inspect --json " + store_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json st = parse_json(r);
  EXPECT_EQ(st["kind"], "store");
  check_inspect_json(st);
  EXPECT_EQ(st["digest"], (*manifest_)["digest"]);
  EXPECT_EQ(st["digest"].get<std::string>().size(), 32u);
  EXPECT_EQ(st["fragments"].size(), 3u + kLayers);
  for (const json& t : st["tensors"]) {
    const std::string name = t["name"];
    const std::string want = name.rfind("blk.", 0) == 0
                                 ? name.substr(0, name.find('.', 4)) + ".lwf"
                                 : (name == "token_embd.weight" ? "embedding.lwf" : "output.lwf");
    EXPECT_EQ(t["fragment"], want) << name;
  }

  r = ft("inspect --json " + gguf_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json gg = parse_json(r);
  EXPECT_EQ(gg["kind"], "gguf");
  check_inspect_json(gg);
  EXPECT_EQ(gg["params"], st["params"]);
  EXPECT_EQ(gg["bytes_per_type"], st["bytes_per_type"]);
  EXPECT_EQ(gg["gguf"]["version"], 3);
  EXPECT_EQ(gg["gguf"]["size"], fs::file_size(gguf_));
  // The GGUF's own digest (xxh3-128 of the file) is the one the store records for join.
  EXPECT_EQ(gg["gguf"]["xxh3"].get<std::string>().size(), 32u);
  EXPECT_EQ(gg["gguf"]["xxh3"], st["gguf"]["xxh3"]);
  EXPECT_EQ(gg["gguf"]["xxh3"], (*manifest_)["gguf"]["xxh3"]);

  // The tables: the digest, every tensor, the per-type totals.
  r = ft("inspect " + store_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(line_with(r.output, {"digest", (*manifest_)["digest"].get<std::string>()}))
      << r.output;
  EXPECT_TRUE(line_with(r.output, {"output.weight", "q6_K", "256x512", "output.lwf"})) << r.output;
  EXPECT_TRUE(contains(r.output, "bytes per type")) << r.output;
  r = ft("inspect " + gguf_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(line_with(r.output, {"blk.2.ffn_down.weight", "768x256"})) << r.output;
  EXPECT_TRUE(line_with(r.output, {"xxh3", gg["gguf"]["xxh3"].get<std::string>()})) << r.output;
}

TEST_F(FragmentToolTest, JoinRebuildsTheGgufByteForByte) {
  const fs::path out = dir_ / "joined.gguf";
  test::CommandResult r = ft("join " + store_.string() + " -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<uint8_t> original = read_file(gguf_);
  ASSERT_GT(original.size(), 100000u);
  EXPECT_TRUE(read_file(out) == original) << "joined GGUF differs from the original";

  r = ft("join " + store_.string() + " -o " + out.string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(line_with(r.output, {"LW-FRAG-008", out.string()})) << r.output;
  write_file(out, {1, 2, 3});
  r = ft("join " + store_.string() + " -o " + out.string() + " --force");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(read_file(out) == original);

  // A damaged store is refused, naming file and tensor, and nothing is written.
  const fs::path s = copy_store("bad");
  const json& t = tensor("blk.1.lwf", 2);
  xor_byte(s / "blk.1.lwf", t["offset"].get<uint64_t>() + 3);
  r = ft("join " + s.string() + " -o " + (dir_ / "bad.gguf").string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(line_with(r.output, {"LW-FRAG-004", "blk.1.lwf", t["name"].get<std::string>()}))
      << r.output;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_FALSE(contains(e.path().filename().string(), "bad.gguf")) << e.path();
  }
}

TEST_F(FragmentToolTest, SynthQuantMixesFollowLlamaCpp) {
  const int n = 8;
  for (const std::string quant : {"q4_k_m", "q8_0", "f16", "f32"}) {
    SCOPED_TRACE(quant);
    const fs::path g = dir_ / (quant + ".gguf");
    test::CommandResult r = ft("synth --preset tiny --layers 8 --quant " + quant + " -o " +
                               g.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = ft("inspect --json " + g.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const json j = parse_json(r);
    EXPECT_EQ(j["params"]["n_layers"], n);
    int q6 = 0;
    for (const json& t : j["tensors"]) {
      const std::string name = t["name"], type = t["type"];
      std::string want;
      if (name.find("norm") != std::string::npos || quant == "f32") {
        want = "f32";
      } else if (quant == "f16") {
        want = "f16";
      } else if (quant == "q8_0") {
        want = "q8_0";
      } else if (name == "output.weight") {
        want = "q6_K";
      } else if (name.find("attn_v") != std::string::npos ||
                 name.find("ffn_down") != std::string::npos) {
        const int layer = std::stoi(name.substr(4));
        want = more_bits(layer, n) ? "q6_K" : "q4_K";
      } else {
        want = "q4_K";
      }
      EXPECT_EQ(type, want) << name;
      q6 += type == "q6_K";
    }
    // Q4_K_M on 8 layers: attn_v and ffn_down of layers 0, 3, 6, 7, plus output.weight.
    EXPECT_EQ(q6, quant == "q4_k_m" ? 2 * 4 + 1 : 0);
  }
}

TEST_F(FragmentToolTest, SynthPresetsSeedsAndVersions) {
  // tiny-magistral: the Q projection is narrower than dim (head_dim != dim / heads).
  const fs::path m = dir_ / "magistral.gguf";
  test::CommandResult r = ft("synth --preset tiny-magistral --layers 1 --quant q8_0 -o " +
                             m.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = ft("inspect --json " + m.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json j = parse_json(r);
  const json& p = j["params"];
  EXPECT_NE(p["head_dim"].get<int>() * p["n_heads"].get<int>(), p["dim"].get<int>());
  for (const json& t : j["tensors"]) {
    if (t["name"] == "blk.0.attn_q.weight") {
      EXPECT_EQ(t["ne"], json::array({p["dim"], p["head_dim"].get<int>() * p["n_heads"].get<int>()}));
    }
    if (t["name"] == "blk.0.attn_output.weight") {
      EXPECT_EQ(t["ne"], json::array({p["head_dim"].get<int>() * p["n_heads"].get<int>(), p["dim"]}));
    }
  }
  // And it splits, verifies and joins back.
  r = ft("split " + m.string() + " -o " + (dir_ / "m.store").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = ft("join " + (dir_ / "m.store").string() + " -o " + (dir_ / "m2.gguf").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(read_file(dir_ / "m2.gguf") == read_file(m));

  // Same seed, same bytes; another seed, other bytes; --gguf-version 2 is read back as 2.
  const std::string base = "synth --preset tiny --layers 1 --quant q4_k_m ";
  ASSERT_EQ(ft(base + "--seed 5 -o " + (dir_ / "a.gguf").string()).exit_code, 0);
  ASSERT_EQ(ft(base + "--seed 5 -o " + (dir_ / "b.gguf").string()).exit_code, 0);
  ASSERT_EQ(ft(base + "--seed 6 -o " + (dir_ / "c.gguf").string()).exit_code, 0);
  ASSERT_EQ(ft(base + "--gguf-version 2 -o " + (dir_ / "v2.gguf").string()).exit_code, 0);
  EXPECT_TRUE(read_file(dir_ / "a.gguf") == read_file(dir_ / "b.gguf"));
  EXPECT_FALSE(read_file(dir_ / "a.gguf") == read_file(dir_ / "c.gguf"));
  r = ft("inspect --json " + (dir_ / "v2.gguf").string());
  EXPECT_EQ(parse_json(r)["gguf"]["version"], 2);
  // synth refuses to overwrite unless --force.
  r = ft(base + "-o " + (dir_ / "a.gguf").string());
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(contains(r.output, "LW-FRAG-008")) << r.output;
  r = ft(base + "--seed 6 --force -o " + (dir_ / "a.gguf").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(read_file(dir_ / "a.gguf") == read_file(dir_ / "c.gguf"));
}

}  // namespace
}  // namespace lw
