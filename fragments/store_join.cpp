// store_join: rebuilds the original GGUF from gguf_header.lwf, the tensors at their
// gguf_offset, zero padding and the recorded gaps, checking every tensor's xxh3 as it is
// copied and the whole result against the manifest's gguf xxh3 before renaming into place.
#include <algorithm>
#include <map>

#include "common/error.h"
#include "common/log.h"
#include "fragments/store.h"
#include "fragments/store_internal.h"

namespace lw {
namespace {

using store_detail::ChunkBuffer;
using store_detail::InputFd;

struct Piece {
  uint64_t offset;  // within the GGUF data section
  const ManifestFragment* fragment = nullptr;
  const ManifestTensor* tensor = nullptr;  // or
  const GgufGap* gap = nullptr;
};

std::string gap_bytes(const GgufGap& gap) {
  std::string out;
  for (size_t i = 0; i + 1 < gap.hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(gap.hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

class Joiner {
 public:
  Joiner(const std::filesystem::path& dir, const Manifest& m, OutputFile& out,
         const ProgressFn& progress)
      : dir_(dir), m_(m), out_(out), progress_(progress) {}

  void run() {
    const ManifestFragment* header = nullptr;
    for (const ManifestFragment& f : m_.fragments) {
      if (f.role == FragmentRole::GgufHeader) header = &f;
    }
    LW_CHECK(header != nullptr, "manifest validation guarantees a gguf_header fragment");
    copy_header(*header);

    std::vector<Piece> pieces;
    for (const ManifestFragment& f : m_.fragments) {
      for (const ManifestTensor& t : f.tensors) pieces.push_back({t.gguf_offset, &f, &t, nullptr});
    }
    for (const GgufGap& g : m_.gguf_gaps) pieces.push_back({g.offset, nullptr, nullptr, &g});
    std::sort(pieces.begin(), pieces.end(),
              [](const Piece& a, const Piece& b) { return a.offset < b.offset; });
    uint64_t pos = 0;  // within the data section
    for (const Piece& p : pieces) {
      LW_CHECK(p.offset >= pos, "manifest validation guarantees pieces do not overlap");
      write_zeros(p.offset - pos);
      if (p.tensor != nullptr) {
        copy_tensor(*p.fragment, *p.tensor);
        pos = p.offset + p.tensor->size;
      } else {
        std::string bytes = gap_bytes(*p.gap);
        write(bytes.data(), bytes.size());
        pos = p.offset + bytes.size();
      }
    }
    write_zeros(m_.gguf_size - m_.gguf_data_offset - pos);
    Hash128 h = whole_.digest();
    if (h != m_.gguf_xxh3) {
      throw Error(ErrorCode::kFragChecksum, "joined GGUF: xxh3 mismatch (manifest " +
                                                m_.gguf_xxh3.hex() + ", joined " + h.hex() + ")");
    }
  }

 private:
  // Opens a fragment file once, checking its size and directory against the manifest.
  const InputFd& open(const ManifestFragment& f) {
    auto it = files_.find(f.file);
    if (it != files_.end()) return it->second;
    std::filesystem::path path = dir_ / f.file;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw Error(ErrorCode::kFragMissing, "fragment " + f.file + ": missing from " + dir_.string());
    }
    InputFd in(path);
    if (in.size() != f.size) {
      throw Error(ErrorCode::kFragSize, "fragment " + f.file + ": size " +
                                            std::to_string(in.size()) + ", manifest says " +
                                            std::to_string(f.size));
    }
    FragmentPrefix prefix = store_detail::read_prefix(in, f.file);
    auto diffs = store_detail::compare_prefix(prefix, f);
    if (!diffs.empty()) {
      const auto& [tensor, detail] = diffs.front();
      throw Error(ErrorCode::kFragHeader, "fragment " + f.file +
                                              (tensor.empty() ? "" : ": tensor " + tensor) +
                                              ": header: " + detail);
    }
    return files_.emplace(f.file, std::move(in)).first->second;
  }

  void copy_header(const ManifestFragment& f) {
    const InputFd& in = open(f);
    Hasher128 file_hash;
    uint8_t head[sizeof(FragmentHeader)];
    in.read_exact(0, head, sizeof(head));
    file_hash.update(head, sizeof(head));
    copy(in, sizeof(head), f.size - sizeof(head), file_hash);
    Hash128 h = file_hash.digest();
    if (h != f.xxh3) {
      throw Error(ErrorCode::kFragChecksum, "fragment " + f.file + ": xxh3 mismatch (manifest " +
                                                f.xxh3.hex() + ", file " + h.hex() + ")");
    }
  }

  void copy_tensor(const ManifestFragment& f, const ManifestTensor& t) {
    const InputFd& in = open(f);
    Hasher128 hash;
    copy(in, t.offset, t.size, hash);
    Hash128 h = hash.digest();
    if (h != t.xxh3) {
      throw Error(ErrorCode::kFragChecksum, "fragment " + f.file + ": tensor " + t.name +
                                                ": xxh3 mismatch (manifest " + t.xxh3.hex() +
                                                ", file " + h.hex() + ")");
    }
  }

  void copy(const InputFd& in, uint64_t offset, uint64_t size, Hasher128& hash) {
    while (size > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf_.size(), size));
      in.read_exact(offset, buf_.data(), n);
      hash.update(buf_.data(), n);
      write(buf_.data(), n);
      offset += n;
      size -= n;
    }
  }

  void write(const void* data, size_t n) {
    whole_.update(data, n);
    out_.write(data, n);
    done_ += n;
    if (progress_) progress_(done_, m_.gguf_size);
  }

  void write_zeros(uint64_t n) {
    static const uint8_t kZeros[4096] = {};
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof(kZeros)));
      write(kZeros, k);
      n -= k;
    }
  }

  const std::filesystem::path& dir_;
  const Manifest& m_;
  OutputFile& out_;
  const ProgressFn& progress_;
  std::map<std::string, InputFd, std::less<>> files_;
  ChunkBuffer buf_;
  Hasher128 whole_;
  uint64_t done_ = 0;
};

}  // namespace

void store_join(const std::filesystem::path& dir, const std::filesystem::path& out_gguf,
                const ProgressFn& progress) {
  namespace fs = std::filesystem;
  Manifest m = manifest_load(dir);
  fs::path out = store_detail::strip_trailing_slash(out_gguf);
  fs::path tmp = store_detail::temp_sibling(out, "partial");
  try {
    {
      OutputFile file(tmp);
      Joiner(dir, m, file, progress).run();
      file.close();
    }
    std::error_code ec;
    fs::rename(tmp, out, ec);
    if (ec) {
      throw Error(ErrorCode::kIoRename,
                  tmp.string() + ": cannot rename to " + out.string() + ": " + ec.message());
    }
  } catch (...) {
    store_detail::remove_quietly(tmp);
    throw;
  }
  store_detail::sync_dir(out.has_parent_path() ? out.parent_path() : fs::path("."));
  logger("fragments")->debug("join {} -> {}: {} bytes, xxh3 {}", dir.string(), out.string(),
                            m.gguf_size, m.gguf_xxh3.hex());
}

}  // namespace lw
