// Helpers shared by the fragment store's split, verify, join and FragmentStore (not a public
// API): sequential file input with large reads, temporary sibling paths, and the check of a
// fragment file's header and directory against its manifest entry.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "fragments/fragment_format.h"
#include "fragments/manifest.h"

namespace lw::store_detail {

// Read size for sequential passes. Every chunk is hashed twice right after it is read (the
// whole-file hash and its tensor's hash), so it must stay in L2: at 8 MiB the second pass
// came from DRAM and verify ran at 1.7 GB/s per core, at 256 KiB 3.0 GB/s (docs/BENCHMARKS.md).
// Still large enough that syscalls cost nothing, and peak RSS does not depend on the model.
constexpr size_t kIoChunk = size_t{256} << 10;

// A read-only file descriptor. Reads are positional (pread) and retried on EINTR; a short
// read is LW-IO-002 naming the path. Movable, not copyable.
class InputFd {
 public:
  explicit InputFd(const std::filesystem::path& path);  // LW-IO-001 when it cannot open
  ~InputFd();
  InputFd(InputFd&& other) noexcept;
  InputFd& operator=(InputFd&&) = delete;
  InputFd(const InputFd&) = delete;
  InputFd& operator=(const InputFd&) = delete;
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Reads up to n bytes at offset; returns the count (less only at end of file).
  size_t read_at(uint64_t offset, void* buf, size_t n) const;
  // Reads exactly n bytes at offset or throws LW-IO-002.
  void read_exact(uint64_t offset, void* buf, size_t n) const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A page-aligned read buffer of at most kIoChunk bytes (smaller when the files are small).
class ChunkBuffer {
 public:
  explicit ChunkBuffer(uint64_t want = kIoChunk);
  ~ChunkBuffer();
  ChunkBuffer(const ChunkBuffer&) = delete;
  ChunkBuffer& operator=(const ChunkBuffer&) = delete;
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_;
  size_t size_;
};

// "<path>.<tag>-<pid>", a sibling of `path` (a trailing '/' on path is ignored).
std::filesystem::path temp_sibling(const std::filesystem::path& path, const std::string& tag);
// `path` without a trailing separator, so parent_path()/filename() behave.
std::filesystem::path strip_trailing_slash(const std::filesystem::path& path);
// Removes a file or folder tree, ignoring errors (cleanup after a failure).
void remove_quietly(const std::filesystem::path& path);
// fsyncs a folder so renames and new entries in it are durable; errors are LW-IO-003.
void sync_dir(const std::filesystem::path& dir);

// Compares a decoded fragment prefix with the manifest's entry for the file. Returns one
// (tensor name or "", detail) pair per disagreement; empty when they match.
std::vector<std::pair<std::string, std::string>> compare_prefix(const FragmentPrefix& prefix,
                                                                 const ManifestFragment& f);

// Reads and decodes the prefix of an open fragment file (header, directory, names).
// Throws LW-FRAG-005 for an invalid header, LW-IO-002 when reading fails.
FragmentPrefix read_prefix(const InputFd& in, const std::string& file);

}  // namespace lw::store_detail
