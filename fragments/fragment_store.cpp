// FragmentStore: lazily mapped fragment files handing out tensors whose size and xxh3-128 have
// been checked against the manifest on first use.
#include "common/error.h"
#include "fragments/store.h"
#include "fragments/store_internal.h"

namespace lw {

FragmentStore FragmentStore::open(const std::filesystem::path& dir) {
  FragmentStore store;
  store.dir_ = dir;
  store.manifest_ = manifest_load(dir);
  return store;
}

const ManifestTensor& FragmentStore::tensor(std::string_view name) const {
  auto [fragment, tensor] = manifest_.find_tensor(name);
  if (tensor == nullptr) {
    throw Error(ErrorCode::kFragTensorLookup, "tensor " + std::string(name) +
                                                  " is not in the store " + dir_.string());
  }
  return *tensor;
}

std::span<const uint8_t> FragmentStore::load_tensor(std::string_view name) {
  if (auto it = verified_.find(name); it != verified_.end()) return it->second;
  auto [fragment, tensor] = manifest_.find_tensor(name);
  if (tensor == nullptr) {
    throw Error(ErrorCode::kFragTensorLookup, "tensor " + std::string(name) +
                                                  " is not in the store " + dir_.string());
  }
  const ManifestFragment& f = *fragment;
  auto it = maps_.find(f.file);
  if (it == maps_.end()) {
    std::filesystem::path path = dir_ / f.file;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw Error(ErrorCode::kFragMissing, "fragment " + f.file + ": missing from " + dir_.string());
    }
    MappedFile map(path);
    if (map.size() != f.size) {
      throw Error(ErrorCode::kFragSize, "fragment " + f.file + ": size " +
                                            std::to_string(map.size()) + ", manifest says " +
                                            std::to_string(f.size));
    }
    FragmentPrefix prefix = fragment_decode_prefix(map.data(), map.size(), f.file);
    auto diffs = store_detail::compare_prefix(prefix, f);
    if (!diffs.empty()) {
      const auto& [tname, detail] = diffs.front();
      throw Error(ErrorCode::kFragHeader, "fragment " + f.file +
                                              (tname.empty() ? "" : ": tensor " + tname) +
                                              ": header: " + detail);
    }
    it = maps_.emplace(f.file, std::move(map)).first;
  }
  // Manifest validation guarantees offset + size <= f.size == map size.
  std::span<const uint8_t> bytes(it->second.data() + tensor->offset, tensor->size);
  Hash128 h = xxh3_128(bytes.data(), bytes.size());
  if (h != tensor->xxh3) {
    throw Error(ErrorCode::kFragChecksum, "fragment " + f.file + ": tensor " + tensor->name +
                                              ": xxh3 mismatch (manifest " + tensor->xxh3.hex() +
                                              ", file " + h.hex() + ")");
  }
  verified_.emplace(tensor->name, bytes);
  return bytes;
}

}  // namespace lw
