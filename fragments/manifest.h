// manifest.json: the description of a fragment store. Holds the model's hyper-parameters
// and preset, every GGUF metadata key (tokenizer included, with its stored type), what
// join needs to rebuild the GGUF byte for byte, and every fragment file with its size,
// role, layer and xxh3-128, and per tensor its name, type, shape, offset, size and
// xxh3-128. `digest` is the xxh3-128 of the canonical JSON of everything else; servers and
// clients compare digests at handshake. docs/FRAGMENT_FORMAT.md specifies each field.
// This file is the only place that parses manifest JSON.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/hash.h"
#include "fragments/arch.h"
#include "fragments/fragment_format.h"
#include "fragments/gguf.h"

namespace lw {

constexpr uint32_t kManifestVersion = 1;
constexpr const char* kManifestFile = "manifest.json";

struct ManifestTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> ne;
  uint64_t offset = 0;       // within its fragment file
  uint64_t size = 0;         // bytes
  uint64_t gguf_offset = 0;  // within the original GGUF data section
  Hash128 xxh3;
};

struct ManifestFragment {
  std::string file;  // relative name: "gguf_header.lwf", "embedding.lwf", "blk.7.lwf", "output.lwf"
  FragmentRole role = FragmentRole::Layer;
  int32_t layer = -1;
  uint64_t size = 0;
  Hash128 xxh3;
  std::vector<ManifestTensor> tensors;
};

// Non-zero bytes between tensors in the original GGUF data section (rare), kept for join.
struct GgufGap {
  uint64_t offset = 0;  // within the data section
  std::string hex;      // the bytes
};

struct Manifest {
  uint32_t version = kManifestVersion;
  ModelParams params;
  GgufMetadata metadata;
  uint32_t gguf_version = 3;
  uint64_t gguf_alignment = 32;
  uint64_t gguf_size = 0;        // original file size
  uint64_t gguf_data_offset = 0; // absolute offset of the data section in the original
  Hash128 gguf_xxh3;             // xxh3-128 of the whole original file; join checks its output
  std::vector<GgufGap> gguf_gaps;
  std::vector<ManifestFragment> fragments;
  Hash128 digest;  // manifest_digest() of the above

  const ManifestFragment* find_fragment(std::string_view file) const;
  const ManifestFragment* layer_fragment(int layer) const;
  // Returns the fragment and tensor with this name, or {nullptr, nullptr}.
  std::pair<const ManifestFragment*, const ManifestTensor*> find_tensor(std::string_view name) const;
};

Hash128 manifest_digest(const Manifest& manifest);
// Canonical JSON (sorted keys, 2-space indent) including the digest field.
std::string manifest_to_json(const Manifest& manifest);
// Parses and validates (every field, types, digest); `source` names the file in errors.
// Throws LW-FRAG-006 (malformed) or LW-FRAG-007 (digest mismatch).
Manifest manifest_from_json(const std::string& text, const std::string& source);
Manifest manifest_load(const std::filesystem::path& dir);

}  // namespace lw
