// The fragment file (.lwf): one per transformer layer, one for the embedding, one for the
// output (final norm + output matrix), plus the original GGUF header for byte-exact join.
//
// Byte layout (little-endian):
//   offset 0   FragmentHeader (64 bytes, below)
//   offset 64  tensor directory: n_tensors x FragmentTensorEntry (96 bytes each)
//   then       name table: the tensor names, each u16 length + bytes (no terminator)
//   then       tensor data, each tensor's original quantized bytes starting at a multiple
//              of kFragmentAlignment from the file start; gaps are zero bytes.
// The manifest repeats every field (and adds xxh3-128 per file and per tensor); readers
// cross-check the two so neither can drift.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lw {

constexpr char kFragmentMagic[8] = {'L', 'W', 'F', 'R', 'A', 'G', '0', '1'};
constexpr uint32_t kFragmentVersion = 1;
constexpr uint64_t kFragmentAlignment = 256;  // tensor data alignment within a file

enum class FragmentRole : uint32_t {
  GgufHeader = 0,  // the original GGUF bytes before the data section (no tensors)
  Embedding = 1,   // token_embd.weight
  Layer = 2,       // blk.N.*
  Output = 3,      // output_norm.weight, output.weight
};

struct FragmentHeader {
  char magic[8];       // kFragmentMagic
  uint32_t version;    // kFragmentVersion
  uint32_t role;       // FragmentRole
  int32_t layer;       // layer index for Layer, -1 otherwise
  uint32_t n_tensors;  // entries in the directory
  uint64_t names_offset;
  uint64_t data_offset;  // first tensor byte (aligned); for GgufHeader the raw bytes start here
  uint64_t file_size;    // whole file, for truncation checks
  uint8_t reserved[16];  // zero
};
static_assert(sizeof(FragmentHeader) == 64, "fragment header is 64 bytes");
static_assert(offsetof(FragmentHeader, names_offset) == 24 &&
              offsetof(FragmentHeader, file_size) == 40);

struct FragmentTensorEntry {
  uint32_t type;       // GgmlType
  uint32_t n_dims;     // 1..4
  uint64_t ne[4];      // unused dims are 1
  uint64_t offset;     // from file start, multiple of kFragmentAlignment
  uint64_t size;       // bytes
  uint64_t gguf_offset;  // offset in the original GGUF data section (for join)
  uint64_t hash_high;  // xxh3-128 of the tensor bytes
  uint64_t hash_low;
  uint8_t reserved[8];
};
static_assert(sizeof(FragmentTensorEntry) == 96, "fragment tensor entry is 96 bytes");

}  // namespace lw
