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
#include <string>
#include <string_view>
#include <vector>

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
  uint8_t reserved[16];  // zero
};
static_assert(sizeof(FragmentTensorEntry) == 96, "fragment tensor entry is 96 bytes");
static_assert(offsetof(FragmentTensorEntry, offset) == 40 &&
              offsetof(FragmentTensorEntry, hash_high) == 64);

// Layout rules (what the writer produces and the reader demands):
//   names_offset = 64 + 96 * n_tensors; names are u16 length + bytes, 1..65535 bytes each.
//   Layer / Embedding / Output: data_offset = names end rounded up to kFragmentAlignment;
//     tensor i starts at the previous tensor's end rounded up to kFragmentAlignment (the
//     first at data_offset); file_size = end of the last tensor (data_offset when none).
//   GgufHeader: n_tensors = 0, names_offset = data_offset = 64, and the original GGUF bytes
//     [0, gguf data offset) follow, so file_size = 64 + gguf data offset.
//   Every byte not covered above (reserved fields, padding) is zero.

// The decoded prefix of a fragment file: header, directory and names (entries[i] is names[i]).
struct FragmentPrefix {
  FragmentHeader header{};
  std::vector<FragmentTensorEntry> entries;
  std::vector<std::string> names;
};

// "gguf_header", "embedding", "layer", "output"; "role#N" for an unknown value.
std::string fragment_role_name(uint32_t role);
// Parses a role name; returns false for anything else.
bool fragment_role_from_name(std::string_view name, FragmentRole* out);

// Fills names_offset, data_offset, file_size and every entry's offset of `prefix` (whose
// header role/layer, entries' type/ne/size/gguf_offset/hash and names are already set), per
// the layout rules above. Sets magic, version, n_tensors and zeroes reserved fields.
void fragment_layout(FragmentPrefix* prefix);
// Serializes header + directory + names + zero padding up to data_offset (exactly
// data_offset bytes; 64 for a GgufHeader fragment).
std::vector<uint8_t> fragment_encode_prefix(const FragmentPrefix& prefix);
// The 64-byte header alone; throws LW-FRAG-005 naming `file` and the field (magic, version,
// role, offsets) when it is not a valid header. `size` is the bytes available (>= 64).
FragmentHeader fragment_decode_header(const uint8_t* data, size_t size, const std::string& file);
// Header, directory and names from the first `size` bytes of a file (at least
// header.data_offset of them, or as many as the file has). Every offset and length is checked
// against `size` and the layout rules, and the padding before data_offset must be zero;
// throws LW-FRAG-005 naming `file`, the tensor and field. The per-tensor fields that do not
// affect the layout (type, n_dims, ne, gguf_offset, hash, reserved) are left to the caller,
// which compares them with the manifest tensor by tensor.
FragmentPrefix fragment_decode_prefix(const uint8_t* data, size_t size, const std::string& file);

}  // namespace lw
