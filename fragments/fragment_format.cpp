#include "fragments/fragment_format.h"

#include <cstring>

#include "common/error.h"
#include "common/file_util.h"

namespace lw {
namespace {

constexpr uint64_t kHeaderSize = sizeof(FragmentHeader);
constexpr uint64_t kEntrySize = sizeof(FragmentTensorEntry);
// More tensors than any llama layer has by far; bounds the directory read from a file.
constexpr uint64_t kMaxFragmentTensors = 1 << 16;
constexpr uint64_t kMaxFragmentFileSize = uint64_t{1} << 56;  // keeps offset sums overflow-free

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw Error(ErrorCode::kFragHeader, "fragment " + file + ": " + what);
}

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

std::string fragment_role_name(uint32_t role) {
  switch (static_cast<FragmentRole>(role)) {
    case FragmentRole::GgufHeader: return "gguf_header";
    case FragmentRole::Embedding: return "embedding";
    case FragmentRole::Layer: return "layer";
    case FragmentRole::Output: return "output";
  }
  return "role#" + std::to_string(role);
}

bool fragment_role_from_name(std::string_view name, FragmentRole* out) {
  for (uint32_t r = 0; r <= static_cast<uint32_t>(FragmentRole::Output); ++r) {
    if (fragment_role_name(r) == name) {
      *out = static_cast<FragmentRole>(r);
      return true;
    }
  }
  return false;
}

void fragment_layout(FragmentPrefix* prefix) {
  LW_CHECK(prefix->entries.size() == prefix->names.size(), "entries and names differ in count");
  FragmentHeader& h = prefix->header;
  std::memcpy(h.magic, kFragmentMagic, sizeof(h.magic));
  h.version = kFragmentVersion;
  h.n_tensors = static_cast<uint32_t>(prefix->entries.size());
  std::memset(h.reserved, 0, sizeof(h.reserved));
  h.names_offset = kHeaderSize + kEntrySize * h.n_tensors;
  if (h.role == static_cast<uint32_t>(FragmentRole::GgufHeader)) {
    LW_CHECK(h.n_tensors == 0, "a GgufHeader fragment has no tensors");
    h.data_offset = kHeaderSize;
    // file_size is set by the caller (64 + the GGUF header bytes).
    return;
  }
  uint64_t names_end = h.names_offset;
  for (const std::string& name : prefix->names) names_end += 2 + name.size();
  h.data_offset = align_up(names_end, kFragmentAlignment);
  uint64_t pos = h.data_offset;
  for (FragmentTensorEntry& e : prefix->entries) {
    pos = align_up(pos, kFragmentAlignment);
    e.offset = pos;
    std::memset(e.reserved, 0, sizeof(e.reserved));
    pos += e.size;
  }
  h.file_size = pos;
}

std::vector<uint8_t> fragment_encode_prefix(const FragmentPrefix& prefix) {
  const FragmentHeader& h = prefix.header;
  std::vector<uint8_t> out(h.data_offset, 0);
  LW_CHECK(out.size() >= h.names_offset, "data_offset before names_offset");
  std::memcpy(out.data(), &h, kHeaderSize);
  for (size_t i = 0; i < prefix.entries.size(); ++i) {
    std::memcpy(out.data() + kHeaderSize + i * kEntrySize, &prefix.entries[i], kEntrySize);
  }
  uint64_t pos = h.names_offset;
  for (const std::string& name : prefix.names) {
    LW_CHECK(!name.empty() && name.size() <= 0xffff, "tensor name length " + name);
    LW_CHECK(pos + 2 + name.size() <= out.size(), "names overrun data_offset");
    uint16_t len = static_cast<uint16_t>(name.size());
    std::memcpy(out.data() + pos, &len, 2);
    std::memcpy(out.data() + pos + 2, name.data(), name.size());
    pos += 2 + name.size();
  }
  return out;
}

FragmentHeader fragment_decode_header(const uint8_t* data, size_t size, const std::string& file) {
  if (size < kHeaderSize) {
    fail(file, "file has " + std::to_string(size) + " bytes, shorter than the 64-byte header");
  }
  FragmentHeader h;
  std::memcpy(&h, data, kHeaderSize);
  if (std::memcmp(h.magic, kFragmentMagic, sizeof(h.magic)) != 0) {
    fail(file, "bad magic (expected \"LWFRAG01\")");
  }
  if (h.version != kFragmentVersion) {
    fail(file, "field version: " + std::to_string(h.version) + ", expected " +
                   std::to_string(kFragmentVersion));
  }
  if (h.role > static_cast<uint32_t>(FragmentRole::Output)) {
    fail(file, "field role: unknown value " + std::to_string(h.role));
  }
  if (!all_zero(h.reserved, sizeof(h.reserved))) fail(file, "field reserved: not zero");
  if (h.n_tensors > kMaxFragmentTensors) {
    fail(file, "field n_tensors: " + std::to_string(h.n_tensors) + " exceeds the limit " +
                   std::to_string(kMaxFragmentTensors));
  }
  uint64_t names_offset = kHeaderSize + kEntrySize * h.n_tensors;
  if (h.names_offset != names_offset) {
    fail(file, "field names_offset: " + std::to_string(h.names_offset) + ", expected " +
                   std::to_string(names_offset) + " for " + std::to_string(h.n_tensors) +
                   " tensors");
  }
  if (h.file_size > kMaxFragmentFileSize) {
    fail(file, "field file_size: " + std::to_string(h.file_size) + " is absurdly large");
  }
  if (h.data_offset < h.names_offset || h.file_size < h.data_offset) {
    fail(file, "offsets out of order (names_offset " + std::to_string(h.names_offset) +
                   ", data_offset " + std::to_string(h.data_offset) + ", file_size " +
                   std::to_string(h.file_size) + ")");
  }
  bool header_role = h.role == static_cast<uint32_t>(FragmentRole::GgufHeader);
  if (header_role && (h.n_tensors != 0 || h.data_offset != kHeaderSize)) {
    fail(file, "gguf_header fragment with " + std::to_string(h.n_tensors) +
                   " tensors and data_offset " + std::to_string(h.data_offset) +
                   " (expected 0 and 64)");
  }
  bool layer_role = h.role == static_cast<uint32_t>(FragmentRole::Layer);
  if (layer_role ? h.layer < 0 : h.layer != -1) {
    fail(file, "field layer: " + std::to_string(h.layer) + " for role " +
                   fragment_role_name(h.role));
  }
  return h;
}

FragmentPrefix fragment_decode_prefix(const uint8_t* data, size_t size, const std::string& file) {
  FragmentPrefix p;
  p.header = fragment_decode_header(data, size, file);
  const FragmentHeader& h = p.header;
  if (h.data_offset > size) {
    fail(file, "data_offset " + std::to_string(h.data_offset) + " lies past the " +
                   std::to_string(size) + " bytes available");
  }
  p.entries.resize(h.n_tensors);
  for (uint32_t i = 0; i < h.n_tensors; ++i) {
    std::memcpy(&p.entries[i], data + kHeaderSize + i * kEntrySize, kEntrySize);
  }
  uint64_t pos = h.names_offset;
  for (uint32_t i = 0; i < h.n_tensors; ++i) {
    uint16_t len = 0;
    if (pos + 2 > h.data_offset) {
      fail(file, "name table: entry " + std::to_string(i) + " runs past data_offset");
    }
    std::memcpy(&len, data + pos, 2);
    if (len == 0 || pos + 2 + len > h.data_offset) {
      fail(file, "name table: entry " + std::to_string(i) + " has length " +
                     std::to_string(len) + " (empty or past data_offset)");
    }
    p.names.emplace_back(reinterpret_cast<const char*>(data + pos + 2), len);
    pos += 2 + len;
  }
  if (!all_zero(data + pos, h.data_offset - pos)) {
    fail(file, "non-zero bytes between the name table and data_offset");
  }
  // The offsets must be exactly what the writer's layout gives for these sizes.
  if (h.role == static_cast<uint32_t>(FragmentRole::GgufHeader)) return p;
  uint64_t expect = align_up(pos, kFragmentAlignment);
  if (h.data_offset != expect) {
    fail(file, "field data_offset: " + std::to_string(h.data_offset) + ", expected " +
                   std::to_string(expect));
  }
  for (uint32_t i = 0; i < h.n_tensors; ++i) {
    const FragmentTensorEntry& e = p.entries[i];
    expect = align_up(expect, kFragmentAlignment);
    if (e.offset != expect) {
      fail(file, "tensor " + p.names[i] + ": field offset: " + std::to_string(e.offset) +
                     ", expected " + std::to_string(expect));
    }
    if (!checked_add(expect, e.size, &expect) || expect > h.file_size) {
      fail(file, "tensor " + p.names[i] + ": offset " + std::to_string(e.offset) + " + size " +
                     std::to_string(e.size) + " runs past file_size " +
                     std::to_string(h.file_size));
    }
  }
  if (expect != h.file_size) {
    fail(file, "field file_size: " + std::to_string(h.file_size) + ", expected " +
                   std::to_string(expect) + " from the tensor sizes");
  }
  return p;
}

}  // namespace lw
