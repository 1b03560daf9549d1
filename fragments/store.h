// The fragment store: split a GGUF into fragment files + manifest.json, verify a store
// (all of it or the fragments one host needs), join it back into the original GGUF byte
// for byte, and read verified tensor bytes for the engine.
// Split writes into "<dir>.partial-<pid>" and renames at the end, so an interrupted split
// never leaves a store that looks complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "fragments/manifest.h"

namespace lw {

// Called with bytes done and bytes total; may be called from worker threads (serialized).
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

struct SplitOptions {
  bool force = false;  // replace a non-empty output folder
  ProgressFn progress;
};
struct SplitResult {
  Manifest manifest;
  uint64_t bytes_written = 0;
  double seconds = 0;
};
SplitResult store_split(const std::filesystem::path& gguf, const std::filesystem::path& out_dir,
                        const SplitOptions& options);

// Inclusive-exclusive layer range [begin, end).
struct LayerRange {
  int begin = 0;
  int end = 0;
  bool contains(int layer) const { return layer >= begin && layer < end; }
  std::string to_string() const;  // "A-B" with B inclusive, as users write it
  // Parses "A-B" (inclusive) or "N"; throws LW-CLI-001 / LW-FRAG-010.
  static LayerRange parse(const std::string& text, int n_layers);
};

// Which fragments a host needs: the given layers and/or the head (embedding + output).
// A default-constructed selection means the whole store (header included), and then files
// not in the manifest are reported as extra.
struct FragmentSelection {
  std::optional<LayerRange> layers;
  bool head = true;
  bool all = true;
  bool includes(const ManifestFragment& f) const;
};

struct VerifyOptions {
  bool quick = false;  // sizes and headers only, no hashing
  unsigned jobs = 1;   // hashing threads
  FragmentSelection selection;
  ProgressFn progress;
};
struct VerifyProblem {
  ErrorCode code;
  std::string file;
  std::string tensor;  // empty when the problem is the whole file
  std::string detail;  // e.g. "xxh3 mismatch (manifest 9f3c..., file 0b71...)"
};
struct VerifyReport {
  std::vector<VerifyProblem> problems;
  // Findings that do not make the store bad, e.g. a leftover "<dir>.partial-<pid>" folder
  // of an interrupted split beside it (LW-FRAG-009). Not counted by ok().
  std::vector<VerifyProblem> warnings;
  uint64_t files_checked = 0;
  uint64_t bytes_checked = 0;
  double seconds = 0;
  bool ok() const { return problems.empty(); }
};
// Never throws for a damaged store (everything goes in the report) except when the
// manifest itself cannot be read or fails its digest (LW-FRAG-006 / 007).
VerifyReport store_verify(const std::filesystem::path& dir, const VerifyOptions& options);

// Writes "<out_gguf>.partial-<pid>", checking every tensor's xxh3 as it is copied and the
// whole result against the manifest's gguf xxh3, then renames it over out_gguf (replacing an
// existing file: callers that must not overwrite check first). Throws LW-FRAG-00x naming the
// file and tensor on any mismatch, and leaves nothing behind.
void store_join(const std::filesystem::path& dir, const std::filesystem::path& out_gguf,
                const ProgressFn& progress);

// Read access for the engine. Fragment files are mapped lazily; every tensor handed out
// has had its size and xxh3-128 checked against the manifest (LW-FRAG-004 otherwise,
// naming file and tensor). Spans stay valid while the store lives. Not thread-safe.
class FragmentStore {
 public:
  static FragmentStore open(const std::filesystem::path& dir);
  const Manifest& manifest() const { return manifest_; }
  const std::filesystem::path& dir() const { return dir_; }
  // The manifest entry; throws LW-FRAG-011 for an unknown name.
  const ManifestTensor& tensor(std::string_view name) const;
  std::span<const uint8_t> load_tensor(std::string_view name);

 private:
  std::filesystem::path dir_;
  Manifest manifest_;
  std::map<std::string, MappedFile, std::less<>> maps_;
  std::map<std::string, std::span<const uint8_t>, std::less<>> verified_;  // by tensor name
};

}  // namespace lw
